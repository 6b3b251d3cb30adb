public import SharedKitCore
public import SharedKitRuntime
import SharedKitStores

/// `Idempotency-Key` on the POSTs that spend quota: the first successful response to a key is kept for
/// 24 hours and replayed for a repeat, so a client retrying after a timeout never generates or pays
/// twice. The key is claimed with a unique row before the work starts, so two concurrent requests with
/// one key cannot both run; the same key with a different request is refused.
public enum Idempotency {

    public static func run(_ request: Request, _ context: Context, userID: UserID, _ work: () throws -> Response) throws -> Response {
        guard let key = request.header("idempotency-key") else { return try work() }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw HTTPError(
                .badRequest, code: "invalid_idempotency_key", message: "Idempotency-Key must be 1 to 255 visible ASCII characters.")
        }
        let db = context.db
        let hash = Encoding.hex(Digest.sha256(Array("\(request.method) \(request.path)\n".utf8) + request.body))
        let claimed = try db.transaction { () -> Bool in
            try db.execute(
                "DELETE FROM idempotency_keys WHERE user_id = \(userID) AND key = \(key) AND created_at < now() - interval '24 hours'")
            return try db.execute(
                """
                INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (\(userID), \(key), \(hash)) ON CONFLICT DO NOTHING
                """) == 1
        }
        if !claimed {
            guard
                let stored = try db.query(
                    """
                    SELECT request_hash, status, headers, body FROM idempotency_keys WHERE user_id = \(userID) AND key = \(key)
                    """
                ).first
            else {
                throw HTTPError(
                    .conflict, code: "idempotency_in_progress",
                    message: "A request with this Idempotency-Key is still running; retry shortly.",
                    headers: [("Retry-After", "1")])
            }
            guard try stored.get("request_hash", as: String.self) == hash else {
                throw HTTPError(
                    .unprocessableContent, code: "idempotency_key_reused",
                    message: "This Idempotency-Key was already used for a different request.")
            }
            guard let status = try stored.get("status", as: Int?.self) else {
                throw HTTPError(
                    .conflict, code: "idempotency_in_progress",
                    message: "A request with this Idempotency-Key is still running; retry shortly.",
                    headers: [("Retry-After", "1")])
            }
            let kept = try stored.get("headers", as: PostgresJSON<[[String]]>?.self)?.value ?? []
            var headers = kept.compactMap { $0.count == 2 ? ($0[0], $0[1]) : nil }
            headers.append(("Idempotent-Replayed", "true"))
            return Response(
                status: HTTPStatus(status, status == 201 ? "Created" : status == 202 ? "Accepted" : "OK"), headers: headers,
                body: try stored.get("body", as: PostgresBytes?.self)?.bytes ?? [])
        }
        do {
            let response = try work()
            let kept = response.headers.filter { ["content-type", "location", "cache-control"].contains($0.0.lowercased()) }.map {
                [$0.0, $0.1]
            }
            try db.execute(
                """
                UPDATE idempotency_keys SET status = \(response.status.code), headers = \(PostgresJSON(kept)), body = \(PostgresBytes(response.body))
                WHERE user_id = \(userID) AND key = \(key)
                """)
            return response
        } catch {
            // Nothing was kept: the key is free for a retry (a failed job was already refunded).
            _ = try? db.execute("DELETE FROM idempotency_keys WHERE user_id = \(userID) AND key = \(key) AND status IS NULL")
            throw error
        }
    }
}
