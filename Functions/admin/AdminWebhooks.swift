import SharedKit
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `GET /api/v1/admin/webhooks`: the recent deliveries to each provider's webhook with their outcome, and
/// warnings for the silent failures operators meet ("paid but nothing happened"): no valid Razorpay
/// webhook for a day while subscriptions are live, deliveries arriving but refused, Replicate jobs waiting
/// with no valid webhook.
enum AdminWebhooks {
    struct Delivery: Encodable {
        let id: Int64
        let provider: String
        let outcome: String
        let status: Int
        let receivedAt: Date
    }

    struct Report: Encodable {
        let items: [Delivery]
        let warnings: [String]
    }

    static func list(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let limit = try PageCursor.limit(request, default: 50, maximum: 200)
        var filter: SQLQuery = "TRUE"
        if let provider = request.query("provider"), !provider.isEmpty {
            guard ["replicate", "razorpay"].contains(provider) else {
                throw HTTPError(.badRequest, code: "invalid_filter", message: "provider must be replicate or razorpay.")
            }
            filter = "provider = \(provider)"
        }
        let items = try context.db.query(
            """
            SELECT id, provider, outcome, status, received_at FROM webhook_deliveries WHERE \(filter)
            ORDER BY id DESC LIMIT \(limit)
            """
        ).rows.map { row in
            Delivery(
                id: try row.get("id"), provider: try row.get("provider"), outcome: try row.get("outcome"),
                status: try row.get("status"), receivedAt: try row.get("received_at"))
        }
        return try .json(Report(items: items, warnings: try warnings(context)))
    }

    static func warnings(_ context: Context) throws -> [String] {
        guard
            let row = try context.db.query(
                """
                SELECT
                  (SELECT count(*)::int FROM subscriptions WHERE status IN \(SubscriptionStatus.sql(SubscriptionStatus.entitling))) AS live_subscriptions,
                  (SELECT count(*)::int FROM webhook_deliveries WHERE provider = 'razorpay' AND outcome IN ('accepted', 'duplicate')
                     AND received_at > now() - interval '24 hours') AS razorpay_ok,
                  (SELECT count(*)::int FROM webhook_deliveries WHERE provider = 'razorpay'
                     AND outcome IN ('invalid_signature', 'bad_timestamp', 'stale_timestamp', 'missing_headers')
                     AND received_at > now() - interval '24 hours') AS razorpay_refused,
                  (SELECT count(*)::int FROM generations WHERE provider = 'replicate' AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                     AND created_at < now() - interval '10 minutes') AS replicate_waiting,
                  (SELECT count(*)::int FROM webhook_deliveries WHERE provider = 'replicate' AND outcome IN ('accepted', 'duplicate')
                     AND received_at > now() - interval '24 hours') AS replicate_ok,
                  (SELECT count(*)::int FROM webhook_deliveries WHERE provider = 'replicate'
                     AND outcome IN ('invalid_signature', 'bad_timestamp', 'stale_timestamp', 'missing_headers')
                     AND received_at > now() - interval '24 hours') AS replicate_refused
                """
            ).first
        else { return [] }
        let live: Int = try row.get("live_subscriptions")
        let razorpayOK: Int = try row.get("razorpay_ok")
        let razorpayRefused: Int = try row.get("razorpay_refused")
        let waiting: Int = try row.get("replicate_waiting")
        let replicateOK: Int = try row.get("replicate_ok")
        let replicateRefused: Int = try row.get("replicate_refused")
        var warnings: [String] = []
        if razorpayRefused > 0 && razorpayOK == 0 {
            warnings.append(
                "\(razorpayRefused) Razorpay webhook(s) in the last 24 hours were refused and none accepted: check RAZORPAY_WEBHOOK_SECRET against the secret in Razorpay's dashboard."
            )
        } else if live > 0 && razorpayOK == 0 {
            warnings.append(
                "No valid Razorpay webhook in the last 24 hours while \(live) subscription(s) are live: check the webhook URL (PUBLIC_BASE_URL/hooks/razorpay) in Razorpay's dashboard."
            )
        }
        if replicateRefused > 0 && replicateOK == 0 {
            warnings.append(
                "\(replicateRefused) Replicate webhook(s) in the last 24 hours were refused and none accepted: check REPLICATE_WEBHOOK_SECRET (GET /v1/webhooks/default/secret)."
            )
        } else if waiting > 0 && replicateOK == 0 {
            warnings.append(
                "\(waiting) Replicate job(s) have waited over 10 minutes with no valid webhook in the last 24 hours: check that PUBLIC_BASE_URL is reachable from the internet (`atelier doctor`)."
            )
        }
        return warnings
    }
}
