public import SharedKitCore

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// How much a user may generate in the current period. Free users get a daily allowance (UTC days);
/// premium users a monthly quota per billing period, which ends when their premium does. An admin's
/// per-user override replaces either limit. A period that has ended counts as unused: the stored
/// counter is reset lazily by the first reservation of the new period.
public struct QuotaPolicy: Sendable {
    public let freeDaily: Int
    public let premiumMonthly: Int

    public init(config: Config) throws {
        freeDaily = try config.integer("QUOTA_FREE_DAILY", default: 10, range: 0...1_000_000)
        premiumMonthly = try config.integer("QUOTA_PREMIUM_MONTHLY", default: 500, range: 0...100_000_000)
    }

    public struct State: Encodable, JSONWritable, Sendable {
        public let used: Int
        public let limit: Int
        public let period: String
        public let periodStart: Date
        public let renewsAt: Date

        public func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("limit", limit)
                o.field("period", period)
                o.field("period_start", periodStart)
                o.field("renews_at", renewsAt)
                o.field("used", used)
            }
        }
    }

    public func state(for user: User, now: Date) -> State {
        let premium = user.isPremium(at: now)
        let start: Date
        let renews: Date
        if premium, let until = user.premiumUntil {
            start = user.quotaPeriodStart
            renews = until
        } else {
            start = Self.startOfDay(now)
            renews = start.addingTimeInterval(86_400)
        }
        let limit = user.quotaOverride ?? (premium ? premiumMonthly : freeDaily)
        let used = user.quotaPeriodStart >= start ? user.quotaUsed : 0
        return State(used: used, limit: limit, period: premium ? "month" : "day", periodStart: start, renewsAt: renews)
    }

    static func startOfDay(_ date: Date) -> Date {
        let seconds = date.timeIntervalSince1970
        return Date(timeIntervalSince1970: (seconds / 86_400).rounded(.down) * 86_400)
    }
}
