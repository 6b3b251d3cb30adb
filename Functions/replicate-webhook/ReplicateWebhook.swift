import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitMedia
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `POST /hooks/replicate`: the signature is checked before anything is read; a delivery id seen before
/// changes nothing; a job's status only moves forward.
enum ReplicateWebhook {
    struct Received: Encodable {
        let received: Bool
    }

    static func receive(_ request: Request, _ context: Context) throws -> Response {
        try WebhookLog.recording("replicate", context) { outcome in try receive(request, context, &outcome) }
    }

    static func receive(_ request: Request, _ context: Context, _ outcome: inout String) throws -> Response {
        guard let secret = context.config.string("REPLICATE_WEBHOOK_SECRET"), let hook = StandardWebhook(secret: secret) else {
            throw HTTPError(.serviceUnavailable, code: "webhooks_not_configured", message: "Replicate webhooks are not configured here.")
        }
        do {
            try hook.verify(
                id: request.header("webhook-id"), timestamp: request.header("webhook-timestamp"),
                signatures: request.header("webhook-signature"), body: request.body, now: context.now())
        } catch {
            // The answer says no more than invalid_signature; the admins' log says why.
            switch error as? StandardWebhook.Failure {
            case .missingHeaders?: outcome = "missing_headers"
            case .badTimestamp?: outcome = "bad_timestamp"
            case .staleTimestamp?: outcome = "stale_timestamp"
            default: outcome = "invalid_signature"
            }
            throw HTTPError(.unauthorized, code: "invalid_signature", message: "The webhook signature does not verify.")
        }
        let prediction: ReplicateClient.Prediction
        do {
            prediction = try JSON.decoder().decode(ReplicateClient.Prediction.self, from: Data(request.body))
        } catch {
            throw HTTPError(.badRequest, code: "invalid_json", message: "The webhook body is not a prediction.")
        }
        guard let jobs = ReplicateJobs(context) else {
            throw HTTPError(.serviceUnavailable, code: "provider_not_configured", message: "Replicate is not configured here.")
        }
        let eventID = request.header("webhook-id")!
        let fresh =
            try context.db.execute(
                """
                INSERT INTO webhook_events (provider, event_id) VALUES ('replicate', \(eventID)) ON CONFLICT DO NOTHING
                """) == 1
        if !fresh { outcome = "duplicate" }
        if fresh {
            let known: Bool
            do {
                // Acknowledge quickly: the output copy runs after the response.
                known = try jobs.apply(prediction, copyLater: true)
            } catch {
                // Let Replicate retry the delivery: forget it was seen.
                _ = try? context.db.execute("DELETE FROM webhook_events WHERE provider = 'replicate' AND event_id = \(eventID)")
                throw error
            }
            if !known {
                // Possibly a webhook that overtook our own record of the prediction: not 2xx, so the final
                // delivery is retried, and not remembered, so the retry is not taken for a duplicate.
                try context.db.execute("DELETE FROM webhook_events WHERE provider = 'replicate' AND event_id = \(eventID)")
                throw HTTPError(.notFound, code: "unknown_prediction", message: "No job here has this prediction id (yet).")
            }
        }
        return try .json(Received(received: true))
    }
}
