/// Six-digit codes sent by email to prove an address (registration) or to reset a password. A code is
/// valid for 10 minutes, used once, bound to its email and purpose, and stored only as an HMAC keyed with
/// `APP_SECRET`. Issuing a new code replaces the previous one; five wrong attempts kill it.
public struct EmailCodes {
    public enum Purpose: String, Sendable { case verify, reset }

    public static let lifetimeSeconds = 600
    public static let maxAttempts = 5

    public enum Outcome: Sendable {
        case accepted
        case wrong
        case expired
        case locked
        case missing
    }

    let db: PostgresConnection
    let secret: String

    public init(db: PostgresConnection, secret: String) {
        self.db = db
        self.secret = secret
    }

    func digest(_ code: String, email: String, purpose: Purpose) -> String {
        Encoding.hex(Digest.hmacSHA256(key: secret, message: "email-code|\(purpose.rawValue)|\(email)|\(code)"))
    }

    /// Makes a new code for the address, replacing any earlier one, and returns it for the email only.
    public func issue(email: String, purpose: Purpose) throws -> String {
        let code = String(1_000_000 + Int(Random.uniform(1_000_000))).dropFirst().description
        try db.execute("""
            INSERT INTO email_codes (email, purpose, code_hmac, expires_at, attempts, created_at)
            VALUES (\(email), \(purpose.rawValue), \(digest(code, email: email, purpose: purpose)),
                    now() + make_interval(secs => \(Self.lifetimeSeconds)), 0, now())
            ON CONFLICT (email, purpose) DO UPDATE
               SET code_hmac = EXCLUDED.code_hmac, expires_at = EXCLUDED.expires_at, attempts = 0, created_at = now()
            """)
        return code
    }

    /// Checks a code inside the caller's transaction. A wrong attempt is counted even though the caller
    /// fails the request, so the caller must commit before throwing. An accepted code is deleted.
    public func redeem(email: String, purpose: Purpose, code: String) throws -> Outcome {
        guard let row = try db.query("""
            SELECT code_hmac, attempts, expires_at < now() AS expired FROM email_codes
            WHERE email = \(email) AND purpose = \(purpose.rawValue) FOR UPDATE
            """).first else { return .missing }
        let attempts: Int = try row.get("attempts")
        if attempts >= Self.maxAttempts { return .locked }
        if try row.get("expired", as: Bool.self) { return .expired }
        let stored: String = try row.get("code_hmac")
        let candidate = digest(code, email: email, purpose: purpose)
        if Digest.constantTimeEquals(Array(stored.utf8), Array(candidate.utf8)) {
            try db.execute("DELETE FROM email_codes WHERE email = \(email) AND purpose = \(purpose.rawValue)")
            return .accepted
        }
        try db.execute("UPDATE email_codes SET attempts = attempts + 1 WHERE email = \(email) AND purpose = \(purpose.rawValue)")
        return .wrong
    }

    /// The error a non-accepted outcome becomes.
    public static func error(for outcome: Outcome) -> HTTPError {
        switch outcome {
        case .locked:
            return HTTPError(.tooManyRequests, code: "code_locked",
                             message: "Too many wrong codes were tried; request a new code and try again.")
        case .expired:
            return HTTPError(.badRequest, code: "invalid_code", message: "That code has expired; request a new one.")
        default:
            return HTTPError(.badRequest, code: "invalid_code", message: "That code is not right, or has expired.")
        }
    }
}

/// How often codes may be sent to one address: one a minute, five an hour (Redis counters keyed by a
/// hash of the address, so Redis holds no email addresses).
public struct CodeSendLimits {
    public static let cooldownSeconds = 60
    public static let perHour = 5

    let redis: RedisConnection

    public init(redis: RedisConnection) {
        self.redis = redis
    }

    /// Claims a send for the address or throws 429 with Retry-After.
    public func claim(email: String, purpose: EmailCodes.Purpose) throws {
        let subject = "\(purpose.rawValue):\(Encoding.hex(Digest.sha256(email)).prefix(32))"
        let reply = try redis.run(Self.script, keys: ["otp:cooldown:\(subject)", "otp:hourly:\(subject)"], arguments: [
            String(Self.cooldownSeconds), String(Self.perHour),
        ])
        guard let result = reply.array, result.count == 2, let verdict = result[0].integer, let wait = result[1].integer else {
            throw RedisError.reply("unexpected reply from the send-limit script")
        }
        switch verdict {
        case 1:
            throw HTTPError(.tooManyRequests, code: "resend_cooldown",
                            message: "A code was just sent; wait \(wait) seconds before asking for another.",
                            headers: [("Retry-After", String(max(1, wait)))])
        case 2:
            throw HTTPError(.tooManyRequests, code: "too_many_codes",
                            message: "Five codes were sent to this address in the last hour; try again in \((wait + 59) / 60) minutes.",
                            headers: [("Retry-After", String(max(1, wait)))])
        default:
            return
        }
    }

    // KEYS: cooldown, hourly counter. ARGV: cooldown seconds, hourly cap.
    // Returns {0, 0} when allowed, {1, ttl} in the cooldown, {2, ttl} over the hourly cap.
    static let script = RedisScript("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return {1, redis.call('TTL', KEYS[1])} end
        local sent = tonumber(redis.call('GET', KEYS[2]) or '0')
        if sent >= tonumber(ARGV[2]) then return {2, redis.call('TTL', KEYS[2])} end
        redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1]))
        if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], 3600) end
        return {0, 0}
        """)
}
