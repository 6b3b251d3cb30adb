import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum AdminAudit {
    /// One action as the log shows it (`created_at` as PostgreSQL writes a time in JSON, with microseconds).
    struct Entry: PostgresRecord, JSONWritable {
        let id: Int64
        let actorID: String?
        let actor: String
        let action: String
        let targetUserID: String?
        let targetEmail: String?
        let before: JSONValue?
        let after: JSONValue?
        let requestID: String?
        let createdAt: String

        static let columns: SQLQuery = """
            id, actor_id, actor_label, action, target_user_id, target_email, before, after, request_id, \
            to_json(created_at) #>> '{}' AS created_at
            """

        init(_ row: inout PostgresRow.Reader) throws {
            id = try row.next()
            actorID = try row.next()
            actor = try row.next()
            action = try row.next()
            targetUserID = try row.next()
            targetEmail = try row.next()
            before = try row.next()
            after = try row.next()
            requestID = try row.next()
            createdAt = try row.next()
        }

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("action", action)
                o.field("actor", actor)
                o.field("actor_id", actorID)
                o.field("after", after)
                o.field("before", before)
                o.field("created_at", createdAt)
                o.field("id", id)
                o.field("request_id", requestID)
                o.field("target_email", targetEmail)
                o.field("target_user_id", targetUserID)
            }
        }
    }

    /// Every admin action, newest first; the cursor is the last row's id (ids only grow).
    static func list(_ request: Request, _ context: Context) throws -> Response {
        var limit = 0
        let entries = try context.read(request, .admin, Entry.self) { _ in
            limit = try PageCursor.limit(request, default: 50, maximum: 200)
            var filter: SQLQuery = "TRUE"
            if let cursor = request.query("cursor"), !cursor.isEmpty {
                guard let id = Int64(cursor), id > 0 else {
                    throw HTTPError(.badRequest, code: "invalid_cursor", message: "The cursor is not one this API gave out.")
                }
                filter = "id < \(id)"
            }
            if let text = request.query("user_id"), !text.isEmpty {
                guard let target = UserID(text) else {
                    throw HTTPError(.badRequest, code: "invalid_filter", message: "user_id must be a user id.")
                }
                filter.append(" AND target_user_id = \(target)")
            }
            return "SELECT \(Entry.columns) FROM audit_log WHERE \(filter) ORDER BY id DESC LIMIT \(limit + 1)"
        }.rows
        let page = Array(entries.prefix(limit))
        let next = entries.count > limit ? page.last.map { String($0.id) } : nil
        return .json(Page(items: page, nextCursor: next))
    }

    /// The service at a glance.
    static func stats(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let stats: JSONValue = try context.db.query(
            """
            SELECT json_build_object(
              'users', (SELECT json_build_object('total', count(*), 'verified', count(*) FILTER (WHERE verified),
                                                 'premium', count(*) FILTER (WHERE premium_until > now()),
                                                 'admins', count(*) FILTER (WHERE is_admin)) FROM users),
              'generations_today', (SELECT COALESCE(json_object_agg(status, n), '{}') FROM
                    (SELECT status, count(*) AS n FROM generations WHERE created_at >= date_trunc('day', now()) GROUP BY status) t),
              'generations_7_days', (SELECT COALESCE(json_object_agg(status, n), '{}') FROM
                    (SELECT status, count(*) AS n FROM generations WHERE created_at >= now() - interval '7 days' GROUP BY status) t),
              'failed_generations_7_days', (SELECT count(*) FROM generations WHERE status = 'failed' AND created_at >= now() - interval '7 days'),
              'api_calls_today', (SELECT COALESCE(sum(count), 0) FROM api_usage WHERE day = (now() AT TIME ZONE 'UTC')::date),
              'api_calls_30_days', (SELECT COALESCE(sum(count), 0) FROM api_usage WHERE day > (now() AT TIME ZONE 'UTC')::date - 30),
              'active_subscriptions', (SELECT count(*) FROM subscriptions WHERE status IN \(SubscriptionStatus.sql(SubscriptionStatus.entitling))),
              'payments_30_days', (SELECT json_build_object('count', COALESCE(sum(n), 0), 'amounts', COALESCE(json_object_agg(currency, total), '{}'))
                    FROM (SELECT currency, count(*) AS n, sum(amount) AS total FROM payments
                          WHERE status = 'captured' AND created_at >= now() - interval '30 days' GROUP BY currency) p)
            )::text AS j
            """
        ).first!.get("j")
        return .json(stats)
    }
}
