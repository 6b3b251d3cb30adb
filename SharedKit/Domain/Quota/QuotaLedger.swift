public import SharedKitCore
import SharedKitRuntime
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Reserves and refunds quota with guarded UPDATEs on the user's row, never read-then-write: under
/// Read Committed a concurrent reservation waits for the row and re-checks the guard, so the limit
/// holds exactly however many requests race. A free user's day rolls over inside the same statement.
public struct QuotaLedger {
    public struct Reservation: Sendable {
        public let cost: Int
        public let periodStart: Date
    }

    let db: PostgresConnection
    let policy: QuotaPolicy
    /// The caller's clock (`Context.date()`), for the premium and period rules.
    let now: Date

    public init(db: PostgresConnection, policy: QuotaPolicy, now: Date) {
        self.now = now
        self.db = db
        self.policy = policy
    }

    /// Charges `cost` units, or throws 429 `quota_exhausted` saying when the quota renews.
    public func reserve(userID: UserID, cost: Int) throws -> Reservation {
        let rows = try db.query(
            """
            UPDATE users SET
                quota_used = CASE WHEN premium_until > now() OR quota_period_start >= date_trunc('day', now())
                                  THEN quota_used + \(cost)::integer ELSE \(cost)::integer END,
                quota_period_start = CASE WHEN premium_until > now() OR quota_period_start >= date_trunc('day', now())
                                          THEN quota_period_start ELSE date_trunc('day', now()) END
            WHERE id = \(userID)
              AND (CASE WHEN premium_until > now() OR quota_period_start >= date_trunc('day', now()) THEN quota_used ELSE 0 END)
                  + \(cost) <= COALESCE(quota_override, CASE WHEN premium_until > now() THEN \(policy.premiumMonthly)::integer ELSE \(policy.freeDaily)::integer END)
            RETURNING quota_period_start
            """)
        if let row = rows.first {
            return Reservation(cost: cost, periodStart: try row.get("quota_period_start"))
        }
        guard let user = try Users(db).find(id: userID) else {
            throw HTTPError(.unauthorized, code: "not_authenticated", message: "Log in to continue.")
        }
        throw exhausted(policy.state(for: user, now: now), cost: cost)
    }

    /// Throws the refusal `reserve` would when the user's quota (as just read) cannot cover `cost`, before
    /// any work that only a charged request should do (storing and decoding an upload). It charges
    /// nothing: `reserve` still decides under concurrency.
    public func ensureAvailable(for user: User, cost: Int) throws {
        let state = policy.state(for: user, now: now)
        if state.used + cost > state.limit { throw exhausted(state, cost: cost) }
    }

    func exhausted(_ state: QuotaPolicy.State, cost: Int) -> HTTPError {
        HTTPError(
            .tooManyRequests, code: "quota_exhausted",
            message: "Your \(state.period == "day" ? "daily allowance" : "monthly quota") of \(state.limit) is used up"
                + (state.limit - state.used > 0 ? " (this needs \(cost), \(state.limit - state.used) left)" : "")
                + "; it renews on \(Self.day(state.renewsAt)).",
            headers: [("Retry-After", String(max(1, Int(state.renewsAt.timeIntervalSinceNow.rounded(.up)))))])
    }

    /// Gives a generation's reservation back, once: the generation row's `refunded` flag is flipped in
    /// the same transaction, and a period that has since rolled over has nothing left to give back.
    @discardableResult
    public func refund(generationID: GenerationID) throws -> Bool {
        try db.transaction {
            let flipped = try db.execute(
                """
                UPDATE generations SET refunded = true, updated_at = now() WHERE id = \(generationID) AND NOT refunded
                """)
            guard flipped == 1 else { return false }
            try db.execute(
                """
                UPDATE users u SET quota_used = GREATEST(u.quota_used - g.cost, 0)
                FROM generations g
                WHERE g.id = \(generationID) AND u.id = g.user_id AND u.quota_period_start = g.quota_period_start
                """)
            return true
        }
    }

    static func day(_ date: Date) -> String {
        String(Timestamp.format(date).prefix(10))
    }
}
