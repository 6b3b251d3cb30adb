import Logging
public import SharedKit
public import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Delivers completion webhooks (`CompletionWebhooks`): maintenance-cron sends what is due, and the
/// request that ends a generation sends its message at once after the response.
///
/// Each attempt resolves the host itself, refuses it unless every address is public
/// (`AddressPolicy`), connects to the address it checked (curl's `--resolve`, no proxy), follows no
/// redirect (a 3xx is a failed attempt), waits at most 10 s and reads at most 64 KiB. A 2xx delivers; a
/// 410 stops the message (the receiver is gone); anything else is tried again after 1 min, 5 min, 30
/// min, 2 h, 5 h, 8 h and 8 h (jittered ±10%), about 24 hours in all, then the message is failed.
public struct WebhookDelivery {
    /// Seconds to wait after each failed attempt; one attempt more than there are waits.
    public static let backoff = [60, 300, 1800, 7200, 18_000, 28_800, 28_800]
    public static var maxAttempts: Int { backoff.count + 1 }
    public static let timeoutMs = 10_000
    public static let maxResponseBytes = 64 * 1024

    let context: Context
    let allowLoopback: Bool

    public init(_ context: Context) {
        self.context = context
        allowLoopback = context.config.string("WEBHOOK_ALLOW_LOOPBACK") == "1"
    }

    public enum Outcome: String, Sendable { case delivered, retrying, failed }

    /// Sends due messages (of one generation, or any), oldest first, at most `limit`; what each did.
    @discardableResult
    public func deliverDue(generationID: GenerationID? = nil, limit: Int = 50, beforeEach: () throws -> Void = {}) throws -> [Outcome] {
        var outcomes: [Outcome] = []
        while outcomes.count < limit {
            try beforeEach()
            guard let message = try claim(generationID: generationID) else { break }
            do {
                outcomes.append(try attempt(message))
            } catch let error as DependencyUnavailable where error.dependency == .database {
                throw error
            } catch {
                // This message only (its lease lets it be tried again later); the others still go.
                context.logger.error(
                    "completion webhook attempt failed", metadata: ["webhook.id": .string(message.id), "error": .string("\(error)")])
                outcomes.append(.retrying)
            }
        }
        return outcomes
    }

    struct Message {
        let id: String
        let userID: UserID
        let generationID: GenerationID
        let url: String
        let event: String
        let payload: String?
        let attempts: Int
        let createdAt: Date
        /// This claim's token: the attempt's result is written only while the claim is still this one
        /// (a redelivery meanwhile starts the message afresh).
        let lease: String
    }

    /// Takes one due message for this attempt: its next attempt is pushed a few minutes on (a lease),
    /// so a concurrent sender does not take it too, and a sender that dies midway leaves it due again.
    func claim(generationID: GenerationID?) throws -> Message? {
        let only: SQLQuery = generationID.map { " AND generation_id = \($0)" } ?? ""
        guard
            let row = try context.db.query(
                """
                UPDATE completion_webhooks SET next_attempt_at = now() + interval '5 minutes', lease = gen_random_uuid()
                WHERE id = (SELECT id FROM completion_webhooks WHERE status = 'pending' AND next_attempt_at <= now()\(only)
                            ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING id, user_id, generation_id, url, event, payload, attempts, created_at, lease
                """
            ).first
        else { return nil }
        return Message(
            id: try row.get("id"), userID: try row.get("user_id"), generationID: try row.get("generation_id"), url: try row.get("url"),
            event: try row.get("event"), payload: try row.get("payload"), attempts: try row.get("attempts"),
            createdAt: try row.get("created_at"), lease: try row.get("lease"))
    }

    /// The body: `{"type": "generation.succeeded", "timestamp": …, "data": <the generation>}`, made at
    /// the first attempt and kept, so every attempt sends the same bytes.
    func payload(_ message: Message) throws -> String {
        if let payload = message.payload { return payload }
        guard let view = try Generations(context).view(id: message.generationID, userID: message.userID) else {
            throw DependencyUnavailable(.database, detail: "generation \(message.generationID) of a webhook is gone")
        }
        var json = JSONWriter()
        json.object { o in
            o.field("data", view)
            o.field("timestamp", message.createdAt)
            o.field("type", message.event)
        }
        let body = String(decoding: json.bytes, as: UTF8.self)
        try context.db.execute("UPDATE completion_webhooks SET payload = \(body) WHERE id = \(message.id) AND payload IS NULL")
        return body
    }

    func attempt(_ message: Message) throws -> Outcome {
        let body = try payload(message)
        let attempt = message.attempts + 1
        var status: Int?
        var problem: String?
        do {
            let response = try send(message, body: body)
            status = response.status
            if !(200...299).contains(response.status) { problem = "answered HTTP \(response.status)" }
        } catch let refused as Refused {
            problem = refused.description
        } catch {
            problem = "\(error)"
        }
        let outcome: Outcome =
            problem == nil ? .delivered : (status == 410 || attempt >= Self.maxAttempts) ? .failed : .retrying
        let wait = attempt <= Self.backoff.count ? Self.backoff[attempt - 1] : 0
        let jittered = Double(wait) * (0.9 + Double(Random.uniform(201)) / 1000)
        try context.db.execute(
            """
            UPDATE completion_webhooks SET attempts = \(attempt), last_attempt_at = now(), last_status = \(status),
                   last_error = \(problem.map { String($0.prefix(500)) }), status = \(outcome == .retrying ? "pending" : outcome.rawValue),
                   delivered_at = CASE WHEN \(outcome == .delivered) THEN now() END,
                   next_attempt_at = now() + make_interval(secs => \(outcome == .retrying ? jittered : 0)), lease = NULL
            WHERE id = \(message.id) AND lease = \(message.lease)::uuid
            """)
        context.metrics.count("atelier_completion_webhook_attempts_total", ["outcome": outcome.rawValue])
        context.logger.info(
            "completion webhook attempt",
            metadata: [
                "webhook.id": .string(message.id), "outcome": .string(outcome.rawValue), "attempt": .stringConvertible(attempt),
                "error": .string(problem ?? ""),
            ])
        return outcome
    }

    /// An address this delivery must not connect to.
    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    /// Resolves, checks and sends; the answer.
    func send(_ message: Message, body: String) throws -> HTTPClient.Response {
        guard let target = WebhookTarget(message.url) else { throw Refused(description: "not a valid URL") }
        if target.scheme == "http", !allowLoopback { throw Refused(description: "plain http is not allowed") }
        // One sentence for every refusal: which internal names exist, and where they point, is not told.
        let notPublic = Refused(description: "\(target.host) is not a public address")
        let addresses: [AddressPolicy.Address]
        if let literal = AddressPolicy.literal(target.host) {
            addresses = [literal]
        } else {
            guard !AddressPolicy.looksNumeric(target.host), !target.isInternalName, target.host.contains(".") || allowLoopback,
                let resolved = AddressPolicy.resolve(target.host)
            else { throw notPublic }
            addresses = resolved
        }
        // Every address must be public: a name with one private address among public ones would let the
        // connection land inside.
        guard addresses.allSatisfy({ AddressPolicy.allows($0, loopback: allowLoopback) }) else { throw notPublic }
        if target.scheme == "http", !addresses.allSatisfy(AddressPolicy.isLoopback) {
            throw Refused(description: "plain http is allowed only to loopback")
        }
        let address = addresses[0]
        var http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: Self.timeoutMs, maxResponseBytes: Self.maxResponseBytes)
        http.noProxy = true
        http.protocols = allowLoopback ? "http,https" : "https"
        // And on the socket itself: whatever curl resolves or is redirected to, it connects only there.
        http.addressGuard = allowLoopback ? .publicOrLoopback : .publicOnly
        if AddressPolicy.literal(target.host) == nil { http.resolve = ["\(target.host):\(target.port):\(AddressPolicy.text(address))"] }
        let secrets = try signingSecrets(userID: message.userID)
        let id = "msg_" + String(message.id.filter { $0 != "-" })
        let timestamp = String(context.now())
        let bytes = Array(body.utf8)
        let signature = secrets.compactMap { StandardWebhook(secret: $0)?.signature(id: id, timestamp: timestamp, body: bytes) }
            .joined(separator: " ")
        let response = try http.send(
            method: "POST", url: message.url,
            headers: [
                ("Content-Type", "application/json"), ("User-Agent", "Atelier-Webhooks/1"), ("webhook-id", id),
                ("webhook-timestamp", timestamp), ("webhook-signature", signature),
            ], body: bytes)
        return response
    }

    /// The user's current signing secret, and the previous one for a day after a rotation.
    func signingSecrets(userID: UserID) throws -> [String] {
        guard
            let row = try context.db.query(
                """
                SELECT webhook_secret_version AS version,
                       COALESCE(webhook_secret_rotated_at > now() - make_interval(secs => \(CompletionWebhooks.previousSecretSeconds)), false) AS recent
                FROM users WHERE id = \(userID)
                """
            ).first
        else { return [] }
        let version: Int = try row.get("version")
        var secrets = [CompletionWebhooks.secret(userID: userID, version: version, appSecret: context.config.appSecret)]
        if try row.get("recent", as: Bool.self), version > 1 {
            secrets.append(CompletionWebhooks.secret(userID: userID, version: version - 1, appSecret: context.config.appSecret))
        }
        return secrets
    }
}
