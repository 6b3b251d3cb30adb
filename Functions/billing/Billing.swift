import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Premium through Razorpay subscriptions. A verified Checkout grants premium for a provisional day at
/// once, so the user can start right away; the signed webhooks (or the renew-cron's reconciliation) then
/// set the real period from Razorpay's own record of the subscription.
enum Billing {
    static let provisionalSeconds = 86_400

    struct Plans: Encodable {
        let plans: [BillingConfig.Plan]
        let paymentsConfigured: Bool
    }

    static func plans(_ request: Request, _ context: Context) throws -> Response {
        let billing = try BillingConfig(config: context.config)
        var plan = billing.plan
        if billing.paymentsConfigured, let client = RazorpayClient(billing), let live = livePlan(plan.id, client, context) {
            if live.price != plan.price || live.currency != plan.currency {
                context.logger.warning(
                    "PLAN_PRICE differs from the Razorpay plan; showing Razorpay's",
                    metadata: [
                        "configured": .string("\(plan.price) \(plan.currency)"), "razorpay": .string("\(live.price) \(live.currency)"),
                    ])
            }
            (plan.price, plan.currency, plan.period) = (live.price, live.currency, live.period)
        }
        return try .json(Plans(plans: plan.id.isEmpty ? [] : [plan], paymentsConfigured: billing.paymentsConfigured))
    }

    /// What Razorpay will charge for the plan (GET /v1/plans/{id}), kept in Redis for ten minutes so the
    /// pricing page costs no provider call per view; nil when neither answers (the configured price shows).
    static func livePlan(_ id: String, _ client: RazorpayClient, _ context: Context) -> (price: Int, currency: String, period: String)? {
        let key = "billing:plan:\(id)"
        if let cached = (try? context.redis.command("GET", key))?.string {
            if cached == "unavailable" { return nil }  // Razorpay did not answer a minute ago
            let parts = cached.split(separator: "|", maxSplits: 2).map(String.init)
            if parts.count == 3, let price = Int(parts[0]) { return (price, parts[1], parts[2]) }
        }
        guard let plan = try? client.fetchPlan(id, quick: true) else {
            _ = try? context.redis.command("SET", key, "unavailable", "EX", "60")
            return nil
        }
        let live = (plan.item.amount, plan.item.currency, BillingConfig.Plan.period(plan.period, interval: plan.interval))
        _ = try? context.redis.command("SET", key, "\(live.0)|\(live.1)|\(live.2)", "EX", "600")
        return live
    }

    struct SubscriptionView: Encodable {
        let subscription: JSONValue
        let premium: UserView.Premium
        let payments: JSONValue
    }

    static func show(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        func json(_ query: SQLQuery) throws -> JSONValue {
            try context.db.query(query).first?.get("j", as: JSONValue?.self) ?? .null
        }
        return try .json(
            SubscriptionView(
                subscription: try json(
                    """
                    SELECT row_to_json(s)::text AS j FROM (SELECT razorpay_subscription_id AS id, plan_id, status, current_start, current_end,
                           cancel_at_cycle_end, created_at FROM subscriptions WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 1) s
                    """),
                premium: UserView(user, now: context.date()).premium,
                payments: try json(
                    """
                    SELECT COALESCE(json_agg(p ORDER BY p.created_at DESC), '[]')::text AS j FROM (SELECT razorpay_payment_id AS id, amount, currency,
                           status, created_at FROM payments WHERE user_id = \(user.id) ORDER BY created_at DESC LIMIT 100) p
                    """)))
    }

    struct Checkout: Encodable {
        let subscriptionId: String
        let keyId: String
        let name: String
        let description: String
        let prefill: [String: String]
    }

    /// Creates (or, while checkout is unfinished, reuses) the user's subscription and returns what
    /// Checkout.js needs. One live subscription per user.
    static func subscribe(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        let billing = try BillingConfig(config: context.config)
        guard billing.paymentsConfigured, let client = RazorpayClient(billing), let keyID = billing.keyID else {
            throw HTTPError(.serviceUnavailable, code: "payments_not_configured", message: "Payments are not set up on this Atelier yet.")
        }
        // The user's row is locked while checking and creating, so two concurrent calls make one subscription.
        let subscriptionID: String = try context.db.transaction {
            try context.db.execute("SELECT 1 FROM users WHERE id = \(user.id) FOR UPDATE")
            let existing = try context.db.query(
                """
                SELECT razorpay_subscription_id, status FROM subscriptions WHERE user_id = \(user.id)
                AND status NOT IN ('cancelled', 'completed', 'expired') ORDER BY created_at DESC LIMIT 1
                """
            ).first
            if let existing, try existing.get("status", as: String.self) != "created" {
                throw HTTPError(
                    .conflict, code: "subscription_exists", message: "You already have a subscription; manage it from your account page.")
            } else if let existing {
                return try existing.get("razorpay_subscription_id")
            }
            let entity: SubscriptionLedger.Entity
            let asked = WallClock.nowSeconds() - 60
            do {
                entity = try client.createSubscription(planID: billing.plan.id, totalCount: billing.totalCount, userID: user.id)
            } catch let uncertain as RazorpayClient.Uncertain {
                // The answer was lost: Razorpay may have made the subscription. It is looked up, never
                // created a second time; not found, the user is asked to try again.
                context.logger.warning("razorpay create uncertain; looking it up", metadata: ["error": .string(uncertain.description)])
                guard let found = try client.findSubscription(planID: billing.plan.id, userID: user.id, since: asked),
                    found.status == "created"
                else {
                    throw DependencyUnavailable(.provider, detail: "razorpay create uncertain and not found")
                }
                entity = found
            }
            try context.db.execute(
                """
                INSERT INTO subscriptions (user_id, razorpay_subscription_id, plan_id, status) VALUES (\(user.id), \(entity.id), \(billing.plan.id), \(entity.status))
                ON CONFLICT (razorpay_subscription_id) DO NOTHING
                """)
            return entity.id
        }
        return try .json(
            Checkout(
                subscriptionId: subscriptionID, keyId: keyID, name: billing.plan.name,
                description: "\(billing.plan.quota) images a month and video",
                prefill: ["email": user.email, "name": user.username ?? ""]), status: .created)
    }

    struct Verification: Decodable {
        let razorpayPaymentId: String
        let razorpaySubscriptionId: String
        let razorpaySignature: String
    }

    struct Verified: Encodable {
        let status: String
        let premium: UserView.Premium
    }

    /// Checks Checkout's signature against the subscription id WE stored for this user; a bad signature
    /// changes nothing.
    static func verify(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        let input = try request.decode(Verification.self)
        let billing = try BillingConfig(config: context.config)
        guard let secret = billing.keySecret else {
            throw HTTPError(.serviceUnavailable, code: "payments_not_configured", message: "Payments are not set up on this Atelier yet.")
        }
        guard
            let stored = try context.db.query(
                """
                SELECT razorpay_subscription_id FROM subscriptions WHERE user_id = \(user.id) AND razorpay_subscription_id = \(input.razorpaySubscriptionId)
                """
            ).first?.get("razorpay_subscription_id", as: String.self)
        else {
            throw HTTPError(.badRequest, code: "invalid_signature", message: "This payment could not be verified.")
        }
        let expected = BillingConfig.checkoutSignature(keySecret: secret, paymentID: input.razorpayPaymentId, subscriptionID: stored)
        guard Digest.constantTimeEquals(Array(expected.utf8), Array(input.razorpaySignature.lowercased().utf8)) else {
            throw HTTPError(.badRequest, code: "invalid_signature", message: "This payment could not be verified.")
        }
        try context.db.transaction {
            // The provisional day is granted once, when the checkout first completes: a replayed
            // verification (or one for a subscription already live or ended) grants nothing more.
            let completed = try context.db.execute(
                """
                UPDATE subscriptions SET status = 'authenticated', updated_at = now() WHERE razorpay_subscription_id = \(stored) AND status = 'created'
                """)
            guard completed == 1 else { return }
            try context.db.execute(
                """
                UPDATE users SET premium_until = GREATEST(COALESCE(premium_until, now()), now() + make_interval(secs => \(provisionalSeconds))),
                       quota_period_start = CASE WHEN premium_until > now() THEN quota_period_start ELSE now() END,
                       quota_used = CASE WHEN premium_until > now() THEN quota_used ELSE 0 END, updated_at = now()
                WHERE id = \(user.id)
                """)
        }
        guard let updated = try Users(context.db).find(id: user.id) else {
            throw HTTPError(.notFound, code: "not_found", message: "No such account.")
        }
        return try .json(Verified(status: "verified", premium: UserView(updated, now: context.date()).premium))
    }

    /// Cancels at the end of the current cycle: premium lasts until the period end.
    static func cancel(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        let billing = try BillingConfig(config: context.config)
        guard let client = RazorpayClient(billing) else {
            throw HTTPError(.serviceUnavailable, code: "payments_not_configured", message: "Payments are not set up on this Atelier yet.")
        }
        guard
            let id: String = try context.db.query(
                """
                SELECT razorpay_subscription_id FROM subscriptions WHERE user_id = \(user.id)
                AND status IN \(SubscriptionStatus.sql(SubscriptionStatus.open)) ORDER BY created_at DESC LIMIT 1
                """
            ).first?.get("razorpay_subscription_id")
        else {
            throw HTTPError(.notFound, code: "no_subscription", message: "You have no subscription to cancel.")
        }
        let entity: SubscriptionLedger.Entity
        do {
            entity = try client.cancelSubscription(id, atCycleEnd: true)
        } catch is RazorpayClient.Uncertain {
            // Whether the cancel happened is read back, not tried again.
            let fetched = try client.fetchSubscription(id)
            guard fetched.hasScheduledChanges == true || SubscriptionStatus.isOne(of: SubscriptionStatus.terminal, fetched.status) else {
                throw DependencyUnavailable(.provider, detail: "razorpay cancel uncertain and not in effect")
            }
            entity = fetched
        }
        try context.db.transaction {
            try context.db.execute(
                "UPDATE subscriptions SET cancel_at_cycle_end = true, updated_at = now() WHERE razorpay_subscription_id = \(id)")
            if SubscriptionStatus.isOne(of: SubscriptionStatus.terminal, entity.status) {
                try SubscriptionLedger(db: context.db, billing: billing).apply(entity, payment: nil)
            }
        }
        return try show(request, context)
    }
}
