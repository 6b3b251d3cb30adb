import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum Profiles {
    struct Profile: JSONWritable {
        let id: UserID
        let email: String
        let username: String?
        let verified: Bool
        let isAdmin: Bool
        let premium: UserView.Premium
        let quota: Quota
        let createdAt: Date

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("created_at", createdAt)
                o.field("email", email)
                o.field("id", id)
                o.field("is_admin", isAdmin)
                o.field("premium", premium)
                o.field("quota", quota)
                o.field("username", username)
                o.field("verified", verified)
            }
        }
    }

    struct Quota: JSONWritable {
        let used: Int
        let limit: Int
        let period: String
        let renewsAt: Date

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("limit", limit)
                o.field("period", period)
                o.field("renews_at", renewsAt)
                o.field("used", used)
            }
        }
    }

    struct Rename: Decodable {
        let username: String
    }

    struct PasswordChange: Decodable {
        let current: String
        let new: String
    }

    struct Confirmation: Decodable {
        let password: String
    }

    struct Done: Encodable {
        let status: String
    }

    static func view(_ user: User, _ context: Context) -> Profile {
        let now = context.date()
        let quota = context.quota.state(for: user, now: now)
        return Profile(
            id: user.id, email: user.email, username: user.username, verified: user.verified, isAdmin: user.isAdmin,
            premium: UserView(user, now: now).premium,
            quota: Quota(used: quota.used, limit: quota.limit, period: quota.period, renewsAt: quota.renewsAt),
            createdAt: user.createdAt)
    }

    static func show(_ request: Request, _ context: Context) throws -> Response {
        .json(view(try context.authorize(request, budget: \.read).user, context))
    }

    static func update(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let username = try AccountRules.username(try request.decode(Rename.self).username)
        do {
            try context.db.execute("UPDATE users SET username = \(username), updated_at = now() WHERE id = \(user.id)")
        } catch let error as PostgresError where error.isUniqueViolation {
            throw HTTPError(.conflict, code: "username_taken", message: "That username is taken; choose another.")
        }
        guard let updated = try Users(context.db).find(id: user.id) else { throw notFound }
        return .json(view(updated, context))
    }

    /// Needs the current password; ends every other session of the account.
    static func changePassword(_ request: Request, _ context: Context) throws -> Response {
        let (user, session) = try context.authenticate(request)
        let input = try request.decode(PasswordChange.self)
        try confirmPassword(input.current, of: user, request, context)
        try AccountRules.password(input.new, email: user.email, username: user.username)
        try Users(context.db).setPassword(id: user.id, hash: try PasswordHasher().hash(input.new))
        try context.sessions.revokeAll(userID: user.id, except: session.id)
        return try .json(Done(status: "password_changed"))
    }

    /// Needs the password; removes the account and everything it owns.
    static func deleteAccount(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authenticatedUser(request)
        try confirmPassword(try request.decode(Confirmation.self).password, of: user, request, context)
        try AccountDeletion(context).delete(userID: user.id)
        var response = Response.empty()
        response.setCookie(context.expiredSessionCookie())
        return response
    }

    struct Usage: JSONWritable {
        struct Day: JSONWritable, PostgresRecord {
            let day: String
            let count: Int

            init(_ row: inout PostgresRow.Reader) throws {
                day = try row.next()
                count = try row.next()
            }

            func write(to json: inout JSONWriter) {
                json.object { o in
                    o.field("count", count)
                    o.field("day", day)
                }
            }
        }

        let days: [Day]
        let total: Int
        let quota: Quota

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("days", days)
                o.field("quota", quota)
                o.field("total", total)
            }
        }
    }

    /// API calls per day for the last 30 days (zero-filled, oldest first) and the current quota.
    static func usage(_ request: Request, _ context: Context) throws -> Response {
        let read = try context.read(request, .owner(\.read), Usage.Day.self) { userID in
            """
            SELECT d::date::text AS day, COALESCE(sum(u.count), 0)::bigint AS count
            FROM generate_series((now() AT TIME ZONE 'UTC')::date - 29, (now() AT TIME ZONE 'UTC')::date, interval '1 day') AS d
            LEFT JOIN api_usage u ON u.user_id = \(userID)::uuid AND u.day = d::date
            GROUP BY d ORDER BY d
            """
        }
        let days = read.rows
        let quota = context.quota.state(for: read.user, now: context.date())
        return .json(
            Usage(
                days: days, total: days.reduce(0) { $0 + $1.count },
                quota: Quota(used: quota.used, limit: quota.limit, period: quota.period, renewsAt: quota.renewsAt)))
    }

    /// The current password, asked again before a sensitive change. Wrong ones count with failed logins
    /// (per account and address), so re-confirmation is no way around the login throttle.
    static func confirmPassword(_ password: String, of user: User, _ request: Request, _ context: Context) throws {
        guard
            try LoginThrottle(redis: context.redis).guarded(
                email: user.email, address: request.clientAddress, { try Users(context.db).verifyPassword(id: user.id, password) })
        else {
            throw HTTPError(.forbidden, code: "invalid_credentials", message: "The current password is not right.")
        }
    }

    static let notFound = HTTPError(.notFound, code: "not_found", message: "No such account.")
}
