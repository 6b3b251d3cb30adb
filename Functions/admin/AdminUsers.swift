import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum AdminUsers {
    struct ListedUser: JSONWritable {
        let id: UserID
        let email: String
        let username: String?
        let verified: Bool
        let isAdmin: Bool
        let premium: UserView.Premium
        let quota: QuotaPolicy.State
        let createdAt: Date
        let lastLoginAt: Date?

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("created_at", createdAt)
                o.field("email", email)
                o.field("id", id)
                o.field("is_admin", isAdmin)
                o.field("last_login_at", lastLoginAt)
                o.field("premium", premium)
                o.field("quota", quota)
                o.field("username", username)
                o.field("verified", verified)
            }
        }
    }

    static func listed(_ user: User, _ context: Context) -> ListedUser {
        ListedUser(
            id: user.id, email: user.email, username: user.username, verified: user.verified, isAdmin: user.isAdmin,
            premium: UserView(user, now: context.date()).premium, quota: context.quota.state(for: user, now: context.date()),
            createdAt: user.createdAt,
            lastLoginAt: user.lastLoginAt)
    }

    static func flag(_ request: Request, _ name: String) throws -> Bool? {
        guard let value = request.query(name), !value.isEmpty else { return nil }
        switch value {
        case "true", "1": return true
        case "false", "0": return false
        default: throw HTTPError(.badRequest, code: "invalid_filter", message: "\(name) must be true or false.")
        }
    }

    /// Search by email or username (case-insensitive substring) with filters; newest first by default
    /// (`sort=created_asc` for oldest first), keyset pages that never repeat or skip a row.
    static func list(_ request: Request, _ context: Context) throws -> Response {
        var limit = 0
        let users = try context.read(request, .admin, User.self) { _ in
            limit = try PageCursor.limit(request, default: 50, maximum: 200)
            let cursor = try PageCursor.parse(request.query("cursor"))
            let ascending: Bool
            switch request.query("sort").flatMap({ $0.isEmpty ? nil : $0 }) ?? "created_desc" {
            case "created_desc": ascending = false
            case "created_asc": ascending = true
            default: throw HTTPError(.badRequest, code: "invalid_sort", message: "sort must be created_desc or created_asc.")
            }
            var filter: SQLQuery = "TRUE"
            if let q = request.query("q")?.trimmingWhitespace(), !q.isEmpty {
                let pattern =
                    "%" + q.lowercased().replacing("\\", with: "\\\\").replacing("%", with: "\\%").replacing("_", with: "\\_") + "%"
                filter.append(" AND (lower(email::text) LIKE \(pattern) OR lower(COALESCE(username::text, '')) LIKE \(pattern))")
            }
            if let premium = try flag(request, "premium") {
                filter.append(premium ? " AND premium_until > now()" : " AND (premium_until IS NULL OR premium_until <= now())")
            }
            if let admin = try flag(request, "admin") { filter.append(" AND is_admin = \(admin)") }
            if let verified = try flag(request, "verified") { filter.append(" AND verified = \(verified)") }
            if let cursor {
                filter.append(
                    ascending
                        ? " AND (created_at, id) > (\(cursor.createdAt), \(cursor.id)::uuid)"
                        : " AND (created_at, id) < (\(cursor.createdAt), \(cursor.id)::uuid)")
            }
            let order: SQLQuery = ascending ? "created_at ASC, id ASC" : "created_at DESC, id DESC"
            return "SELECT \(User.columns) FROM users WHERE \(filter) ORDER BY \(order) LIMIT \(limit + 1)"
        }.rows
        let page = Array(users.prefix(limit))
        let next = users.count > limit ? page.last.map { PageCursor(createdAt: $0.createdAt, id: ID($0.id)).token } : nil
        return .json(Page(items: page.map { listed($0, context) }, nextCursor: next))
    }

    struct Detail: JSONWritable {
        let user: ListedUser
        let subscription: JSONValue
        let payments: JSONValue
        let usage: JSONValue
        let apiKeys: [APIKeys.Listed]
        let activeSessions: Int
        let history: JSONValue
        let historyNextCursor: String?

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("active_sessions", activeSessions)
                o.field("api_keys", apiKeys)
                o.field("history", history)
                o.field("history_next_cursor", historyNextCursor)
                o.field("payments", payments)
                o.field("subscription", subscription)
                o.field("usage", usage)
                o.field("user", user)
            }
        }
    }

    static func target(_ request: Request, _ context: Context) throws -> User {
        guard let id: UserID = try request.id("id"), let user = try Users(context.db).find(id: id) else {
            throw HTTPError(.notFound, code: "not_found", message: "No such user.")
        }
        return user
    }

    static func json(_ context: Context, _ query: SQLQuery) throws -> JSONValue {
        try context.db.query(query).first?.get("j", as: JSONValue?.self) ?? .null
    }

    /// Everything about one user: standing, subscription and payments, usage, keys, sessions and the
    /// prompt history (generations with their status and errors, newest first, `history_cursor` pages).
    static func detail(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let user = try target(request, context)
        let cursor = try PageCursor.parse(request.query("history_cursor"))
        let limit = try PageCursor.limit(request, default: 25, maximum: 100)
        var historyFilter: SQLQuery = ""
        if let cursor { historyFilter = " AND (g.created_at, g.id) < (\(cursor.createdAt), \(cursor.id)::uuid)" }
        let history = try context.db.query(
            """
            SELECT g.id, g.created_at, json_build_object(
                'id', g.id, 'task', g.task, 'provider', g.provider, 'model', g.model, 'status', g.status, 'error', g.error, 'cost', g.cost,
                'refunded', g.refunded, 'prompt', g.input->>'prompt', 'created_at', g.created_at, 'completed_at', g.completed_at,
                'image_ids', COALESCE((SELECT json_agg(i.id) FROM images i WHERE i.generation_id = g.id), '[]'),
                'video_ids', COALESCE((SELECT json_agg(v.id) FROM videos v WHERE v.generation_id = g.id), '[]'))::text AS j
            FROM generations g WHERE g.user_id = \(user.id)\(historyFilter)
            ORDER BY g.created_at DESC, g.id DESC LIMIT \(limit + 1)
            """)
        let rows = Array(history.rows.prefix(limit))
        let items = try rows.map { try $0.get("j", as: JSONValue.self) }
        let next =
            history.rows.count > limit
            ? try rows.last.map { PageCursor(createdAt: try $0.get("created_at"), id: try $0.get("id")).token } : nil
        let detail = Detail(
            user: listed(user, context),
            subscription: try json(
                context,
                """
                SELECT row_to_json(s)::text AS j FROM (SELECT razorpay_subscription_id, plan_id, status, current_start, current_end,
                       cancel_at_cycle_end, created_at FROM subscriptions WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 1) s
                """),
            payments: try json(
                context,
                """
                SELECT COALESCE(json_agg(p ORDER BY p.created_at DESC), '[]')::text AS j FROM (SELECT razorpay_payment_id, amount, currency,
                       status, created_at FROM payments WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 50) p
                """),
            usage: try json(
                context,
                """
                SELECT json_agg(json_build_object('day', d::date::text, 'count', COALESCE(u.n, 0)) ORDER BY d)::text AS j
                FROM generate_series((now() AT TIME ZONE 'UTC')::date - 29, (now() AT TIME ZONE 'UTC')::date, interval '1 day') d
                LEFT JOIN (SELECT day, sum(count) AS n FROM api_usage WHERE user_id = \(user.id) GROUP BY day) u ON u.day = d::date
                """),
            apiKeys: try APIKeys(context.db).list(userID: user.id),
            activeSessions: try context.sessions.count(userID: user.id),
            history: .array(items),
            historyNextCursor: next)
        return .json(detail)
    }

    /// A field that may be absent (unchanged), null (cleared) or a value.
    enum Change<T: Decodable & Sendable>: Sendable {
        case unchanged, cleared, set(T)
    }

    struct Update: Decodable {
        let isAdmin: Change<Bool>
        let premiumUntil: Change<Date>
        let quotaOverride: Change<Int>
        let password: String?

        enum CodingKeys: String, CodingKey { case isAdmin, premiumUntil, quotaOverride, password }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func change<T: Decodable>(_ key: CodingKeys) throws -> Change<T> {
                guard c.contains(key) else { return .unchanged }
                if try c.decodeNil(forKey: key) { return .cleared }
                return .set(try c.decode(T.self, forKey: key))
            }
            isAdmin = try change(.isAdmin)
            premiumUntil = try change(.premiumUntil)
            quotaOverride = try change(.quotaOverride)
            password = try c.decodeIfPresent(String.self, forKey: .password)
        }
    }

    /// Promote or demote (promotion needs the acting admin's password; the last admin stays), grant or
    /// revoke premium without a subscription, set or clear a quota override. One audit row per change,
    /// in the same transaction.
    static func update(_ request: Request, _ context: Context) throws -> Response {
        let admin = try AdminAccess.require(request, context)
        let input = try request.decode(Update.self)
        let targetID = try target(request, context).id
        if case .set(true) = input.isAdmin { try AdminAccess.reauthenticate(admin, password: input.password, request, context) }
        if case .cleared = input.isAdmin { throw HTTPError(.badRequest, code: "invalid_field", message: "is_admin must be true or false.") }
        if case .set(let value) = input.quotaOverride, !(0...100_000_000).contains(value) {
            throw HTTPError(.badRequest, code: "invalid_field", message: "quota_override must be from 0 to 100000000, or null.")
        }
        let db = context.db
        let updated: User = try db.transaction {
            if case .set(false) = input.isAdmin {
                // Lock every admin row in one order before anything else, so two admins demoting each
                // other wait for one another instead of deadlocking, and the count below is exact.
                try db.execute("SELECT id FROM users WHERE is_admin ORDER BY id FOR UPDATE")
            }
            guard let before = try db.query("SELECT \(User.columns) FROM users WHERE id = \(targetID) FOR UPDATE").records(User.self).first
            else {
                throw HTTPError(.notFound, code: "not_found", message: "No such user.")
            }
            let audit = AuditLog(db)
            func record(_ action: String, _ old: JSONValue, _ new: JSONValue, _ field: String) throws {
                try audit.record(
                    actorID: admin.id, actorLabel: admin.email, action: action, targetUserID: before.id, targetEmail: before.email,
                    before: [field: old], after: [field: new], requestID: request.id)
            }
            if case .set(let makeAdmin) = input.isAdmin, makeAdmin != before.isAdmin {
                if !makeAdmin {
                    let admins = try db.query("SELECT id FROM users WHERE is_admin").rows.count
                    if admins <= 1 {
                        throw HTTPError(.conflict, code: "last_admin", message: "This is the last admin; promote someone else first.")
                    }
                }
                try db.execute("UPDATE users SET is_admin = \(makeAdmin), updated_at = now() WHERE id = \(before.id)")
                try record(makeAdmin ? "promote_admin" : "demote_admin", .bool(before.isAdmin), .bool(makeAdmin), "is_admin")
            }
            switch input.premiumUntil {
            case .unchanged: break
            case .cleared:
                try db.execute("UPDATE users SET premium_until = NULL, updated_at = now() WHERE id = \(before.id)")
                try record("revoke_premium", timestamp(before.premiumUntil), .null, "premium_until")
            case .set(let until):
                // A grant starts a fresh monthly period when the user was not premium.
                try db.execute(
                    """
                    UPDATE users SET premium_until = \(until), updated_at = now(),
                           quota_period_start = CASE WHEN premium_until > now() THEN quota_period_start ELSE now() END,
                           quota_used = CASE WHEN premium_until > now() THEN quota_used ELSE 0 END
                    WHERE id = \(before.id)
                    """)
                try record("grant_premium", timestamp(before.premiumUntil), timestamp(until), "premium_until")
            }
            switch input.quotaOverride {
            case .unchanged: break
            case .cleared:
                try db.execute("UPDATE users SET quota_override = NULL, updated_at = now() WHERE id = \(before.id)")
                try record("set_quota_override", before.quotaOverride.map { .number(Double($0)) } ?? .null, .null, "quota_override")
            case .set(let value):
                try db.execute("UPDATE users SET quota_override = \(value), updated_at = now() WHERE id = \(before.id)")
                try record(
                    "set_quota_override", before.quotaOverride.map { .number(Double($0)) } ?? .null, .number(Double(value)),
                    "quota_override")
            }
            return try db.query("SELECT \(User.columns) FROM users WHERE id = \(before.id)").records(User.self)[0]
        }
        return .json(listed(updated, context))
    }

    static func timestamp(_ date: Date?) -> JSONValue {
        date.map { .string(Timestamp.format($0)) } ?? .null
    }

    struct Deletion: Decodable {
        let confirmEmail: String
        let password: String?
    }

    /// Deletes a user and everything they own; needs their email typed back and the admin's password.
    static func delete(_ request: Request, _ context: Context) throws -> Response {
        let admin = try AdminAccess.require(request, context)
        let input = try request.decode(Deletion.self)
        let user = try target(request, context)
        guard user.id != admin.id else {
            throw HTTPError(
                .conflict, code: "cannot_delete_self", message: "Admins cannot delete their own account here; use the account page.")
        }
        guard input.confirmEmail.trimmingWhitespace().lowercased() == user.email.lowercased() else {
            throw HTTPError(.badRequest, code: "confirm_email_mismatch", message: "Type the user's email exactly to confirm.")
        }
        try AdminAccess.reauthenticate(admin, password: input.password, request, context)
        try AccountDeletion(context).delete(userID: user.id) {
            try AuditLog(context.db).record(
                actorID: admin.id, actorLabel: admin.email, action: "delete_user", targetUserID: user.id, targetEmail: user.email,
                before: ["email": .string(user.email), "is_admin": .bool(user.isAdmin)], after: nil, requestID: request.id)
        }
        return .empty()
    }

    struct SessionCount: Encodable {
        let activeSessions: Int
    }

    static func sessions(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        return try .json(SessionCount(activeSessions: try context.sessions.count(userID: try target(request, context).id)))
    }

    static func revokeSessions(_ request: Request, _ context: Context) throws -> Response {
        let admin = try AdminAccess.require(request, context)
        let user = try target(request, context)
        let ended = try context.sessions.revokeAll(userID: user.id)
        try AuditLog(context.db).record(
            actorID: admin.id, actorLabel: admin.email, action: "revoke_sessions", targetUserID: user.id,
            targetEmail: user.email, before: ["active_sessions": .number(Double(ended))],
            after: ["active_sessions": .number(0)], requestID: request.id)
        return .empty()
    }
}
