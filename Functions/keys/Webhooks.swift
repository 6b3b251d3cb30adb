import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The completion-webhook side of the API keys page: the signing secret (shown and rotated from a
/// browser session only, like keys) and the deliveries (readable and redeliverable by programs too).
enum Webhooks {
    struct Secret: JSONWritable {
        let secret: String
        let version: Int
        let rotatedAt: Date?
        let previousValidUntil: Date?

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("previous_valid_until", previousValidUntil)
                o.field("rotated_at", rotatedAt)
                o.field("secret", secret)
                o.field("version", version)
            }
        }
    }

    /// GET /api/v1/webhooks/secret
    static func secret(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        return .json(try current(user.id, context))
    }

    /// POST /api/v1/webhooks/secret/rotate: a new secret at once; the previous one still signs every
    /// delivery (as a second signature) for 24 hours, so receivers can switch without losing any.
    static func rotate(_ request: Request, _ context: Context) throws -> Response {
        let (user, _) = try context.authenticate(request)
        try context.db.execute(
            """
            UPDATE users SET webhook_secret_version = webhook_secret_version + 1, webhook_secret_rotated_at = now() WHERE id = \(user.id)
            """)
        return .json(try current(user.id, context))
    }

    static func current(_ userID: UserID, _ context: Context) throws -> Secret {
        guard
            let row = try context.db.query(
                """
                SELECT webhook_secret_version AS version, webhook_secret_rotated_at AS rotated_at,
                       webhook_secret_rotated_at + make_interval(secs => \(CompletionWebhooks.previousSecretSeconds)) AS previous_until
                FROM users WHERE id = \(userID)
                """
            ).first
        else { throw HTTPError(.unauthorized, code: "unauthenticated", message: "Sign in again.") }
        let version: Int = try row.get("version")
        let previousUntil: Date? = try row.get("previous_until")
        return Secret(
            secret: CompletionWebhooks.secret(userID: userID, version: version, appSecret: context.config.appSecret), version: version,
            rotatedAt: try row.get("rotated_at"), previousValidUntil: previousUntil.flatMap { $0 > context.date() ? $0 : nil })
    }

    struct Delivery: JSONWritable, PostgresRecord, Sendable {
        let id: String
        let generationId: GenerationID
        let url: String
        let event: String
        let status: String
        let attempts: Int
        let lastStatus: Int?
        let lastError: String?
        let nextAttemptAt: Date?
        let lastAttemptAt: Date?
        let deliveredAt: Date?
        let createdAt: Date

        static let columns: SQLQuery = """
            id, generation_id, url, event, status, attempts, last_status, last_error,
            CASE WHEN status = 'pending' THEN next_attempt_at END, last_attempt_at, delivered_at, created_at
            """

        init(_ row: inout PostgresRow.Reader) throws {
            id = try row.next()
            generationId = try row.next()
            url = try row.next()
            event = try row.next()
            status = try row.next()
            attempts = try row.next()
            lastStatus = try row.next()
            lastError = try row.next()
            nextAttemptAt = try row.next()
            lastAttemptAt = try row.next()
            deliveredAt = try row.next()
            createdAt = try row.next()
        }

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("attempts", attempts)
                o.field("created_at", createdAt)
                o.field("delivered_at", deliveredAt)
                o.field("event", event)
                o.field("generation_id", generationId)
                o.field("id", id)
                o.field("last_attempt_at", lastAttemptAt)
                o.field("last_error", lastError)
                o.field("last_status", lastStatus)
                o.field("next_attempt_at", nextAttemptAt)
                o.field("status", status)
                o.field("url", url)
            }
        }
    }

    struct Deliveries: JSONWritable {
        let items: [Delivery]

        func write(to json: inout JSONWriter) {
            json.object { $0.field("items", items) }
        }
    }

    /// GET /api/v1/webhooks/deliveries: the newest first (`limit`, 50 by default, at most 100), optionally
    /// of one generation (`generation_id`).
    static func deliveries(_ request: Request, _ context: Context) throws -> Response {
        let found = try context.read(request, .owner(\.read), Delivery.self) { userID in
            let limit = try PageCursor.limit(request, default: 50)
            var filter: SQLQuery = ""
            if let text = request.query("generation_id"), !text.isEmpty {
                guard let generation = GenerationID(text) else {
                    throw HTTPError(.badRequest, code: "invalid_generation_id", message: "generation_id must be a generation's id.")
                }
                filter = " AND generation_id = \(generation)"
            }
            return """
                SELECT \(Delivery.columns) FROM completion_webhooks WHERE user_id = \(userID)\(filter)
                ORDER BY created_at DESC, id DESC LIMIT \(limit)
                """
        }
        return .json(Deliveries(items: found.rows))
    }

    /// POST /api/v1/webhooks/deliveries/:id/redeliver: the message is sent again, the same body and
    /// webhook-id (receivers deduplicate on it), within a minute, with a fresh day of retries.
    static func redeliver(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        guard let id: ID<Delivery> = try request.id("id"),
            let delivery = try context.db.query(
                """
                UPDATE completion_webhooks SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL, lease = NULL
                WHERE id = \(id) AND user_id = \(user.id)
                RETURNING \(Delivery.columns)
                """
            ).records(Delivery.self).first
        else { throw HTTPError(.notFound, code: "not_found", message: "No such delivery.") }
        return .json(delivery, status: .accepted)
    }
}
