import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `POST /hooks/razorpay`: the signature is checked on the raw body before it is parsed; a signed body seen
/// before changes nothing; the event's effects and its id are written in one transaction, so a failure
/// answers 5xx and Razorpay delivers it again.
enum RazorpayWebhook {
    struct Event: Decodable {
        struct Payload: Decodable {
            struct Wrapped<T: Decodable>: Decodable { let entity: T }
            let subscription: Wrapped<SubscriptionLedger.Entity>?
            let payment: Wrapped<SubscriptionLedger.Payment>?
        }

        let event: String
        let payload: Payload
    }

    struct Received: Encodable {
        let received: Bool
        let duplicate: Bool
    }

    static func receive(_ request: Request, _ context: Context) throws -> Response {
        try WebhookLog.recording("razorpay", context) { outcome in try receive(request, context, &outcome) }
    }

    static func receive(_ request: Request, _ context: Context, _ outcome: inout String) throws -> Response {
        let billing = try BillingConfig(config: context.config)
        guard let secret = billing.webhookSecret else {
            throw HTTPError(.serviceUnavailable, code: "payments_not_configured", message: "Razorpay webhooks are not configured here.")
        }
        let expected = BillingConfig.webhookSignature(secret: secret, body: request.body)
        guard let sent = request.header("x-razorpay-signature"),
            Digest.constantTimeEquals(Array(expected.utf8), Array(sent.lowercased().utf8))
        else {
            throw HTTPError(.badRequest, code: "invalid_signature", message: "The webhook signature does not verify.")
        }
        let event: Event
        do {
            event = try JSON.decoder().decode(Event.self, from: Data(request.body))
        } catch {
            throw HTTPError(.badRequest, code: "invalid_json", message: "The webhook body is not a Razorpay event.")
        }
        // De-duplicated by what is signed: a captured delivery replayed under a new (unsigned)
        // x-razorpay-event-id is the same body, so it has no second effect. Razorpay's redeliveries send
        // the same body too.
        let eventID = "sha256:" + Encoding.hex(Digest.sha256(request.body))
        let fresh = try context.db.transaction { () -> Bool in
            guard
                try context.db.execute(
                    """
                    INSERT INTO webhook_events (provider, event_id) VALUES ('razorpay', \(eventID)) ON CONFLICT DO NOTHING
                    """) == 1
            else { return false }
            if let subscription = event.payload.subscription?.entity {
                try SubscriptionLedger(db: context.db, billing: billing).apply(subscription, payment: event.payload.payment?.entity)
            }
            return true
        }
        if !fresh { outcome = "duplicate" }
        return try .json(Received(received: true, duplicate: !fresh))
    }
}
