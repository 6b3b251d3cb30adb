import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitStores

enum Renewal {
    static func run(_ context: Context) -> Int32 {
        do {
            let billing = try BillingConfig(config: context.config)
            let staleAfter = try context.config.integer("RAZORPAY_RECONCILE_AFTER_SECONDS", default: 3600, range: 0...30 * 86_400)
            let summary = try RunLock(db: context.db, name: "renew-cron").run { lease in
                try work(context, lease, billing: billing, staleAfter: staleAfter)
            }
            guard let summary else {
                context.logger.info("renew skipped: another run holds the lock")
                print("renew: skipped")
                return 0
            }
            context.logger.info("renew done", metadata: summary.mapValues { .stringConvertible($0) })
            print("renew: " + summary.keys.sorted().map { "\($0)=\(summary[$0]!)" }.joined(separator: " "))
            return summary["reconcile_failed", default: 0] > 0 ? 2 : 0
        } catch {
            context.logger.error("renew failed", metadata: ["error": .string("\(error)")])
            return 1
        }
    }

    /// Every change is guarded by its own condition, so a second run changes nothing. Each statement is its
    /// own transaction, and each subscription is fetched outside any transaction and applied in a short one.
    static func work(_ context: Context, _ lease: RunLock, billing: BillingConfig, staleAfter: Int) throws -> [String: Int] {
        let db = context.db
        var summary = ["periods_started": 0, "reconciled": 0, "reconcile_failed": 0, "expired": 0]
        // Subscription periods Razorpay has moved on (webhook applied the period but not the reset).
        summary["periods_started"]! += try db.execute(
            """
            UPDATE users u SET quota_period_start = s.current_start, quota_used = 0
            FROM subscriptions s
            WHERE s.user_id = u.id AND s.status IN \(SubscriptionStatus.sql(SubscriptionStatus.entitling)) AND s.current_start IS NOT NULL
              AND u.premium_until > now() AND u.quota_period_start < s.current_start
            """)
        // Premium without a live subscription (an admin grant): monthly periods counted from the last one.
        summary["periods_started"]! += try db.execute(
            """
            UPDATE users u SET quota_period_start = u.quota_period_start
                     + make_interval(months => (extract(year FROM age(now(), u.quota_period_start)) * 12
                                                + extract(month FROM age(now(), u.quota_period_start)))::integer),
                   quota_used = 0
            WHERE u.premium_until > now() AND u.quota_period_start <= now() - interval '1 month'
              AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id AND s.status IN \(SubscriptionStatus.sql(SubscriptionStatus.entitling)))
            """)
        // Subscriptions whose state looks stale: a period that should have renewed, or a checkout left
        // unconfirmed. Razorpay's own record decides.
        if let client = RazorpayClient(billing) {
            let stale = try db.query(
                """
                SELECT razorpay_subscription_id AS id FROM subscriptions
                WHERE ((status IN \(SubscriptionStatus.sql(SubscriptionStatus.renewing)) AND (current_end IS NULL OR current_end < now()))
                       OR (status = 'created' AND created_at < now() - make_interval(secs => \(staleAfter))))
                  AND updated_at < now() - make_interval(secs => \(staleAfter))
                ORDER BY updated_at LIMIT 100
                """)
            let ledger = SubscriptionLedger(db: db, billing: billing)
            for row in stale.rows {
                let id: String = try row.get("id")
                try lease.extend()
                do {
                    let entity = try client.fetchSubscription(id)
                    try db.transaction {
                        try ledger.apply(entity, payment: nil)
                        try db.execute("UPDATE subscriptions SET updated_at = now() WHERE razorpay_subscription_id = \(id)")
                    }
                    summary["reconciled"]! += 1
                } catch {
                    context.logger.error("reconcile failed", metadata: ["subscription": .string(id), "error": .string("\(error)")])
                    summary["reconcile_failed"]! += 1
                }
            }
        }
        // Premium past its end (grace included): the account is free again, on a daily allowance.
        summary["expired"] = try db.execute(
            """
            UPDATE users SET quota_period_start = date_trunc('day', now()), quota_used = 0, updated_at = now()
            WHERE premium_until IS NOT NULL AND premium_until <= now() AND quota_period_start < premium_until
              AND quota_period_start < date_trunc('day', now())
            """)
        return summary
    }
}
