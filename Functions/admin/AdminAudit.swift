#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SharedKit

enum AdminAudit {
    /// Every admin action, newest first; the cursor is the last row's id (ids only grow).
    static func list(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let limit = try PageCursor.limit(request, default: 50, maximum: 200)
        var filter: SQLQuery = "TRUE"
        if let cursor = request.query("cursor"), !cursor.isEmpty {
            guard let id = Int64(cursor), id > 0 else {
                throw HTTPError(.badRequest, code: "invalid_cursor", message: "The cursor is not one this API gave out.")
            }
            filter = "id < \(id)"
        }
        if let target = request.query("user_id"), !target.isEmpty {
            guard UUIDText.isValid(target) else { throw HTTPError(.badRequest, code: "invalid_filter", message: "user_id must be a user id.") }
            filter.append(" AND target_user_id = \(target)::uuid")
        }
        let rows = try context.db.query("""
            SELECT id, json_build_object('id', id, 'actor_id', actor_id, 'actor', actor_label, 'action', action,
                   'target_user_id', target_user_id, 'target_email', target_email, 'before', before, 'after', after,
                   'request_id', request_id, 'created_at', created_at)::text AS j
            FROM audit_log WHERE \(filter) ORDER BY id DESC LIMIT \(limit + 1)
            """)
        let page = Array(rows.rows.prefix(limit))
        let items = try page.map { try $0.get("j", as: JSONValue.self) }
        let next: String? = rows.rows.count > limit ? try page.last.map { String(try $0.get("id", as: Int64.self)) } : nil
        return .json(Page(items: items, nextCursor: next))
    }

    /// The service at a glance.
    static func stats(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let stats: JSONValue = try context.db.query("""
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
              'active_subscriptions', (SELECT count(*) FROM subscriptions WHERE status IN ('authenticated', 'active', 'pending')),
              'payments_30_days', (SELECT json_build_object('count', COALESCE(sum(n), 0), 'amounts', COALESCE(json_object_agg(currency, total), '{}'))
                    FROM (SELECT currency, count(*) AS n, sum(amount) AS total FROM payments
                          WHERE status = 'captured' AND created_at >= now() - interval '30 days' GROUP BY currency) p)
            )::text AS j
            """).first!.get("j")
        return .json(stats)
    }
}
