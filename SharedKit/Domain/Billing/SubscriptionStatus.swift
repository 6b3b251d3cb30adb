public import SharedKitStores

/// A Razorpay subscription's status, as Razorpay names it and as `subscriptions.status` keeps it, and the
/// one definition of each set of statuses the code asks about (in Swift and in SQL).
public enum SubscriptionStatus: String, CaseIterable, Sendable {
    case created, authenticated, active, pending, halted, cancelled, completed, expired, paused

    /// Paid, or being paid (a renewal Razorpay is retrying): the subscription entitles premium and counts
    /// as live.
    public static let entitling: [Self] = [.authenticated, .active, .pending]
    /// Razorpay moves these on by itself (a renewal, a retry): stale once their period has ended.
    public static let renewing: [Self] = [.authenticated, .active, .pending, .halted]
    /// Not ended: there is a subscription to finish or to cancel.
    public static let open: [Self] = [.created, .authenticated, .active, .pending, .halted, .paused]
    /// Ended for good.
    public static let terminal: [Self] = [.cancelled, .completed, .expired]

    /// Whether Razorpay's status text is one of `set`.
    public static func isOne(of set: [Self], _ text: String) -> Bool {
        Self(rawValue: text).map { set.contains($0) } ?? false
    }

    /// `('a', 'b', …)` for `status IN \(SubscriptionStatus.sql(.entitling))`: our own constants, so the
    /// statement text stays the same (and stays prepared).
    public static func sql(_ set: [Self]) -> SQLQuery {
        SQLQuery(unsafeSQL: "(" + set.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")")
    }
}
