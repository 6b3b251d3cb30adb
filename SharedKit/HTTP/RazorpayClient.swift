#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import SharedKit

/// Razorpay's subscriptions API over libcurl with Basic auth; throttling is retried with backoff.
public struct RazorpayClient: Sendable {
    let keyID: String
    let keySecret: String
    let base: String
    let http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: 10_000, maxResponseBytes: 1024 * 1024)

    public init?(_ billing: BillingConfig) {
        guard let keyID = billing.keyID, let keySecret = billing.keySecret else { return nil }
        self.keyID = keyID
        self.keySecret = keySecret
        self.base = billing.apiBase
    }

    public func createSubscription(planID: String, totalCount: Int, userID: String) throws -> SubscriptionLedger.Entity {
        let body: JSONValue = .object([
            "plan_id": .string(planID), "total_count": .number(Double(totalCount)), "customer_notify": .number(1),
            "notes": .object(["user_id": .string(userID)]),
        ])
        return try send("POST", "/subscriptions", body: try JSON.encode(body))
    }

    public func fetchSubscription(_ id: String) throws -> SubscriptionLedger.Entity {
        try send("GET", "/subscriptions/\(id)", body: nil)
    }

    public func cancelSubscription(_ id: String, atCycleEnd: Bool) throws -> SubscriptionLedger.Entity {
        try send("POST", "/subscriptions/\(id)/cancel", body: try JSON.encode(JSONValue.object(["cancel_at_cycle_end": .bool(atCycleEnd)])))
    }

    func send(_ method: String, _ path: String, body: [UInt8]?) throws -> SubscriptionLedger.Entity {
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClient.Response
            do {
                response = try http.send(method: method, url: base + path,
                                         headers: body == nil ? [] : [("Content-Type", "application/json")], body: body,
                                         basicAuth: (keyID, keySecret))
            } catch {
                if attempt < 3 { usleep(UInt32(300_000 * attempt)); continue }
                throw DependencyUnavailable(.provider, detail: "razorpay: \(error)")
            }
            switch response.status {
            case 200...299:
                do { return try JSON.decoder().decode(SubscriptionLedger.Entity.self, from: Data(response.body)) } catch {
                    throw DependencyUnavailable(.provider, detail: "razorpay: unreadable subscription: \(error)")
                }
            case 429, 500...599:
                if attempt < 3 { usleep(UInt32(300_000 * attempt + Int(Random.uniform(200_000)))); continue }
                throw DependencyUnavailable(.provider, detail: "razorpay: HTTP \(response.status)")
            default:
                let description = (try? JSON.decoder().decode(JSONValue.self, from: Data(response.body)))?["error"]?["description"]?.string
                throw HTTPError(.badGateway, code: "payment_provider_error",
                                message: "The payment provider refused this: \(description ?? "HTTP \(response.status)").")
            }
        }
    }
}
