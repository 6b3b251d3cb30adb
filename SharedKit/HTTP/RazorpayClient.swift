public import SharedKit
public import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Razorpay's subscriptions API over libcurl with Basic auth. A GET is retried after 429, 5xx and
/// transport errors; a POST (a create or a cancel) only after 429 or when no byte of it left this machine:
/// after any other failure Razorpay may have acted on it, and sending it again could leave a second
/// subscription behind. Such a failure throws `Uncertain`, and the caller finds out with a GET.
public struct RazorpayClient: Sendable {
    /// A POST that failed in a way that does not say whether Razorpay acted on it.
    public struct Uncertain: Error, CustomStringConvertible {
        public let description: String
    }

    struct Collection: Decodable {
        let items: [SubscriptionLedger.Entity]
    }

    /// A plan as Razorpay keeps it (`GET /v1/plans/{id}`): what it charges, per how long.
    public struct Plan: Decodable, Sendable {
        public struct Item: Decodable, Sendable {
            public let amount: Int
            public let currency: String
        }
        public let id: String
        public let period: String
        public let interval: Int
        public let item: Item
    }

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

    public func createSubscription(planID: String, totalCount: Int, userID: UserID) throws -> SubscriptionLedger.Entity {
        let body: JSONValue = .object([
            "plan_id": .string(planID), "total_count": .number(Double(totalCount)), "customer_notify": .number(1),
            "notes": .object(["user_id": .string(userID.text)]),
        ])
        return try send("POST", "/subscriptions", body: try JSON.encode(body))
    }

    public func fetchSubscription(_ id: String) throws -> SubscriptionLedger.Entity {
        try send("GET", "/subscriptions/\(id)", body: nil)
    }

    /// Razorpay ids are ASCII letters, digits and underscores: only such a value goes into a URL.
    static func isID(_ text: String) -> Bool {
        !text.isEmpty
            && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_") }
    }

    /// The plan (GET /v1/plans/{id}). `quick`: one attempt of at most two seconds (a public page waits).
    public func fetchPlan(_ id: String, quick: Bool = false) throws -> Plan {
        guard Self.isID(id) else { throw DependencyUnavailable(.provider, detail: "razorpay: not a plan id") }
        var brief = http
        brief.timeoutMs = 2000
        brief.connectTimeoutMs = 1000
        let body = try sendRaw("GET", "/plans/\(id)", body: nil, client: quick ? brief : nil, attempts: quick ? 1 : 3)
        do { return try JSON.decoder().decode(Plan.self, from: Data(body)) } catch {
            throw DependencyUnavailable(.provider, detail: "razorpay: unreadable plan: \(error)")
        }
    }

    /// The newest subscription to `planID` created since `since` (Unix seconds) whose notes name
    /// `userID`: the one a create whose answer was lost made, if it did (GET /v1/subscriptions).
    public func findSubscription(planID: String, userID: UserID, since: Int64) throws -> SubscriptionLedger.Entity? {
        let query = (Self.isID(planID) ? "?plan_id=\(planID)&" : "?") + "from=\(since)&count=100"
        let body = try sendRaw("GET", "/subscriptions" + query, body: nil)
        guard let page = try? JSON.decoder().decode(Collection.self, from: Data(body)) else {
            throw DependencyUnavailable(.provider, detail: "razorpay: unreadable subscription list")
        }
        return page.items.filter { $0.notes?["user_id"]?.string == userID.text }.max { ($0.createdAt ?? 0) < ($1.createdAt ?? 0) }
    }

    public func cancelSubscription(_ id: String, atCycleEnd: Bool) throws -> SubscriptionLedger.Entity {
        try send("POST", "/subscriptions/\(id)/cancel", body: try JSON.encode(JSONValue.object(["cancel_at_cycle_end": .bool(atCycleEnd)])))
    }

    func send(_ method: String, _ path: String, body: [UInt8]?) throws -> SubscriptionLedger.Entity {
        let answer = try sendRaw(method, path, body: body)
        do { return try JSON.decoder().decode(SubscriptionLedger.Entity.self, from: Data(answer)) } catch {
            if method != "GET" { throw Uncertain(description: "razorpay: unreadable answer to \(method) \(path)") }
            throw DependencyUnavailable(.provider, detail: "razorpay: unreadable subscription: \(error)")
        }
    }

    /// One call with the retries its method allows; the 2xx body.
    func sendRaw(_ method: String, _ path: String, body: [UInt8]?, client: HTTPClient? = nil, attempts: Int = 3) throws -> [UInt8] {
        let http = client ?? self.http
        let idempotent = method == "GET"
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClient.Response
            do {
                response = try http.send(
                    method: method, url: base + path,
                    headers: body == nil ? [] : [("Content-Type", "application/json")], body: body,
                    basicAuth: (keyID, keySecret))
            } catch let failure as HTTPClient.Failure {
                if idempotent || failure.notSent, attempt < attempts { usleep(UInt32(300_000 * attempt)); continue }
                if !idempotent && !failure.notSent { throw Uncertain(description: "razorpay: \(failure)") }
                throw DependencyUnavailable(.provider, detail: "razorpay: \(failure)")
            }
            switch response.status {
            case 200...299:
                return response.body
            case 429, 500...599:
                // 429 refused the request; a 5xx to a POST may come after it was acted on.
                let retry = idempotent || response.status == 429
                if retry, attempt < attempts { usleep(UInt32(300_000 * attempt + Int(Random.uniform(200_000)))); continue }
                if !retry { throw Uncertain(description: "razorpay: HTTP \(response.status) to \(method) \(path)") }
                throw DependencyUnavailable(.provider, detail: "razorpay: HTTP \(response.status)")
            default:
                let description = (try? JSON.decoder().decode(JSONValue.self, from: Data(response.body)))?["error"]?["description"]?.string
                throw HTTPError(
                    .badGateway, code: "payment_provider_error",
                    message: "The payment provider refused this: \(description ?? "HTTP \(response.status)").")
            }
        }
    }
}
