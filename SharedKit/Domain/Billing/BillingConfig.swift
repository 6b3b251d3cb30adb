public import SharedKitCore

/// The plan Atelier sells and the Razorpay account it is sold through, from configuration.
public struct BillingConfig: Sendable {
    public struct Plan: Encodable, Sendable {
        public let id: String
        public let name: String
        public var price: Int
        public var currency: String
        public var period: String
        public let quota: Int
        public let video: Bool

        /// Razorpay's `period` and `interval` as the plan's period: "month", "year", "3 months" …
        public static func period(_ razorpayPeriod: String, interval: Int) -> String {
            let unit =
                ["daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year"][razorpayPeriod]
                ?? razorpayPeriod
            return interval <= 1 ? unit : "\(interval) \(unit)s"
        }
    }

    public let keyID: String?
    public let keySecret: String?
    public let webhookSecret: String?
    public let apiBase: String
    public let plan: Plan
    public let totalCount: Int
    /// How long premium outlives a period end while Razorpay retries a failed renewal.
    public let graceSeconds: Int

    public init(config: Config) throws {
        keyID = config.string("RAZORPAY_KEY_ID")
        keySecret = config.string("RAZORPAY_KEY_SECRET")
        webhookSecret = config.string("RAZORPAY_WEBHOOK_SECRET")
        let base = config.string("RAZORPAY_API_BASE") ?? "https://api.razorpay.com/v1"
        apiBase = base.hasSuffix("/") ? String(base.dropLast()) : base
        plan = Plan(
            id: config.string("RAZORPAY_PLAN_ID") ?? "",
            name: config.string("PLAN_NAME") ?? "Atelier Premium",
            price: try config.integer("PLAN_PRICE", default: 49_900, range: 100...100_000_000),
            currency: config.string("PLAN_CURRENCY") ?? "INR",
            period: "month",
            quota: try config.integer("QUOTA_PREMIUM_MONTHLY", default: 500, range: 0...100_000_000),
            video: true)
        totalCount = try config.integer("SUBSCRIPTION_TOTAL_COUNT", default: 12, range: 1...1200)
        graceSeconds = try config.integer("PREMIUM_GRACE_SECONDS", default: 3 * 86_400, range: 0...90 * 86_400)
    }

    /// Checkout can be offered only with keys and a plan.
    public var paymentsConfigured: Bool { keyID != nil && keySecret != nil && !plan.id.isEmpty }

    /// Checkout's signature for a subscription: hex HMAC-SHA256(key_secret, payment_id|subscription_id).
    public static func checkoutSignature(keySecret: String, paymentID: String, subscriptionID: String) -> String {
        Encoding.hex(Digest.hmacSHA256(key: keySecret, message: "\(paymentID)|\(subscriptionID)"))
    }

    /// A webhook's signature: hex HMAC-SHA256 of the raw body with the webhook secret.
    public static func webhookSignature(secret: String, body: [UInt8]) -> String {
        Encoding.hex(Digest.hmacSHA256(key: Array(secret.utf8), message: body))
    }
}
