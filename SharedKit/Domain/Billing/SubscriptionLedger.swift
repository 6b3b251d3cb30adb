public import SharedKitCore
public import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Applies what Razorpay says about a subscription to our records. Decisions come from the subscription
/// entity (its status and current period), never from the order events arrive in: an older snapshot
/// (an earlier period) changes nothing, and a terminal status is never left.
public struct SubscriptionLedger {
    public struct Entity: Decodable, Sendable {
        public let id: String
        public let status: String
        public let planId: String?
        public let currentStart: Int64?
        public let currentEnd: Int64?
        public let notes: JSONValue?
        /// A cancellation at the cycle's end is pending (Razorpay keeps the status until then).
        public let hasScheduledChanges: Bool?
        public let createdAt: Int64?
    }

    public struct Payment: Decodable, Sendable {
        public let id: String
        public let amount: Int64
        public let currency: String
        public let status: String
    }

    let db: PostgresConnection
    let billing: BillingConfig

    public init(db: PostgresConnection, billing: BillingConfig) {
        self.db = db
        self.billing = billing
    }

    /// Call inside a transaction. Returns false when the subscription is not one of ours.
    @discardableResult
    public func apply(_ entity: Entity, payment: Payment?) throws -> Bool {
        var row = try db.query(
            """
            SELECT id, user_id, status, current_end FROM subscriptions WHERE razorpay_subscription_id = \(entity.id) FOR UPDATE
            """
        ).first
        if row == nil, let userID = entity.notes?["user_id"]?.string.flatMap(UserID.init),
            try db.query("SELECT 1 FROM users WHERE id = \(userID)").first != nil
        {
            row = try db.query(
                """
                INSERT INTO subscriptions (user_id, razorpay_subscription_id, plan_id, status) VALUES (\(userID), \(entity.id), \(entity.planId ?? billing.plan.id), 'created')
                RETURNING id, user_id, status, current_end
                """
            ).first
        }
        guard let row else { return false }
        let subscriptionID: String = try row.get("id")
        let userID: String = try row.get("user_id")
        let storedStatus: String = try row.get("status")
        let storedEnd: Date? = try row.get("current_end")
        let start = entity.currentStart.map { Date(timeIntervalSince1970: Double($0)) }
        var end = entity.currentEnd.map { Date(timeIntervalSince1970: Double($0)) }
        // Ending after a failed renewal (pending, then halted or cancelled): the entity's period may be the
        // unpaid cycle; what was paid for ends where our record says.
        if storedStatus == "pending", let storedEnd, let given = end,
            ["halted", "cancelled", "completed", "expired", "paused"].contains(entity.status)
        {
            end = min(given, storedEnd)
        }

        // A payment is recorded once, whatever else happens.
        if let payment {
            try db.execute(
                """
                INSERT INTO payments (user_id, subscription_id, razorpay_payment_id, amount, currency, status)
                VALUES (\(userID), \(subscriptionID), \(payment.id), \(payment.amount), \(payment.currency), \(payment.status))
                ON CONFLICT (razorpay_payment_id) DO UPDATE SET status = EXCLUDED.status
                  WHERE payments.status <> 'captured'
                """)
        }

        let older = storedEnd != nil && (end == nil || end! < storedEnd!)
        let leavingTerminal =
            SubscriptionStatus.isOne(of: SubscriptionStatus.terminal, storedStatus)
            && !SubscriptionStatus.isOne(of: SubscriptionStatus.terminal, entity.status)
        if older || leavingTerminal { return true }

        if entity.status == "pending" {
            // The renewal charge failed and is being retried. The entity's period may already be the
            // unpaid cycle: our record keeps the paid one, premium runs to its end plus the grace, and the
            // quota is not renewed. A charge that succeeds later moves both on.
            try db.execute("UPDATE subscriptions SET status = 'pending', updated_at = now() WHERE id = \(subscriptionID)")
            guard let paidEnd = storedEnd else { return true }
            try db.execute(
                """
                UPDATE users SET premium_until = GREATEST(COALESCE(premium_until, to_timestamp(0)), \(paidEnd)::timestamptz + make_interval(secs => \(billing.graceSeconds)::integer)),
                       updated_at = now()
                WHERE id = \(userID)
                """)
            return true
        }

        try db.execute(
            """
            UPDATE subscriptions SET status = \(entity.status), current_start = COALESCE(\(start)::timestamptz, current_start),
                   current_end = COALESCE(\(end)::timestamptz, current_end), updated_at = now()
            WHERE id = \(subscriptionID)
            """)
        guard let end else { return true }
        switch entity.status {
        case "active", "authenticated":
            // Paid through `end`; while renewals are expected, premium outlives it by the grace period.
            try db.execute(
                """
                UPDATE users SET premium_until = GREATEST(COALESCE(premium_until, to_timestamp(0)), \(end)::timestamptz + make_interval(secs => \(billing.graceSeconds)::integer)),
                       updated_at = now()
                WHERE id = \(userID)
                """)
            if let start {
                // A new billing period starts with a fresh quota, exactly once.
                try db.execute(
                    """
                    UPDATE users SET quota_period_start = \(start)::timestamptz, quota_used = 0
                    WHERE id = \(userID) AND quota_period_start < \(start)::timestamptz
                    """)
            }
        case "cancelled", "completed", "halted", "expired", "paused":
            // Premium lasts to the end of what was paid for (a longer admin grant is kept).
            try db.execute(
                """
                UPDATE users SET premium_until = CASE WHEN premium_until > \(end)::timestamptz + make_interval(secs => \(billing.graceSeconds)::integer)
                                                      THEN premium_until ELSE \(end)::timestamptz END, updated_at = now()
                WHERE id = \(userID)
                """)
        default:
            break
        }
        return true
    }
}
