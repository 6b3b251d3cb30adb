import SharedKitCore
public import SharedKitRuntime
public import SharedKitStores

/// Six-digit codes sent by email to prove an address (registration) or to reset a password. A code is
/// valid for 10 minutes, used once, bound to its email and purpose, and stored only as an HMAC keyed with
/// `APP_SECRET`. A sign-up's code carries that sign-up's password hash and username: several sign-ups of
/// one unverified address each keep their own code, and the code entered decides whose credentials the
/// account takes (so nobody can change a pending account without its mailbox). A new reset code replaces
/// the previous one. Five wrong attempts on an address kill its codes of that purpose.
public struct EmailCodes {
    public enum Purpose: String, Sendable { case verify, reset }

    public static let lifetimeSeconds = 600
    public static let maxAttempts = 5
    /// Sign-ups of one address whose codes stay live at once (the oldest go first).
    public static let maxPendingSignUps = 3

    /// What a sign-up asked for, applied when its code is entered.
    public struct Credentials: Sendable, Equatable {
        public let passwordHash: String
        public let username: String?

        public init(passwordHash: String, username: String?) {
            self.passwordHash = passwordHash
            self.username = username
        }
    }

    public enum Outcome: Sendable, Equatable {
        case accepted(Credentials?)
        case wrong
        case expired
        case locked
        case missing

        public var isAccepted: Bool { if case .accepted = self { true } else { false } }
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

    /// Makes a new code for the address and returns it for the email only. A reset code replaces the
    /// address's earlier one; a sign-up's code (with its credentials) joins the live ones, of which the
    /// newest `maxPendingSignUps` are kept. `replacing` names a code row this one stands in for (a resend).
    public func issue(email: String, purpose: Purpose, credentials: Credentials? = nil, replacing: Int64? = nil) throws -> String {
        let code = String(1_000_000 + Int(Random.uniform(1_000_000))).dropFirst().description
        if purpose == .reset {
            try db.execute("DELETE FROM email_codes WHERE email = \(email) AND purpose = 'reset'")
        }
        if let replacing {
            try db.execute("DELETE FROM email_codes WHERE id = \(replacing)")
        }
        try db.execute(
            """
            INSERT INTO email_codes (email, purpose, code_hmac, expires_at, attempts, created_at, password_hash, username)
            VALUES (\(email), \(purpose.rawValue), \(digest(code, email: email, purpose: purpose)),
                    now() + make_interval(secs => \(Self.lifetimeSeconds)), 0, now(), \(credentials?.passwordHash),
                    \(credentials?.username))
            """)
        if purpose == .verify {
            try db.execute(
                """
                DELETE FROM email_codes WHERE email = \(email) AND purpose = 'verify' AND id NOT IN (
                    SELECT id FROM email_codes WHERE email = \(email) AND purpose = 'verify'
                    ORDER BY created_at DESC, id DESC LIMIT \(Self.maxPendingSignUps))
                """)
        }
        return code
    }

    /// The newest sign-up code of an address: its row and credentials (a resend mails a fresh code for it).
    public func newestSignUp(email: String) throws -> (id: Int64, credentials: Credentials?)? {
        guard
            let row = try db.query(
                """
                SELECT id, password_hash, username FROM email_codes WHERE email = \(email) AND purpose = 'verify'
                ORDER BY created_at DESC, id DESC LIMIT 1
                """
            ).first
        else { return nil }
        let hash: String? = try row.get("password_hash")
        return (try row.get("id"), hash.map { Credentials(passwordHash: $0, username: try? row.get("username")) })
    }

    /// Checks a code against the address's live codes of the purpose, inside the caller's transaction. A
    /// wrong attempt is counted (on every code of the address) even though the caller fails the request, so
    /// the caller must commit before throwing. An accepted code ends all codes of that purpose and returns
    /// the credentials its sign-up carried.
    public func redeem(email: String, purpose: Purpose, code: String) throws -> Outcome {
        let rows = try db.query(
            """
            SELECT code_hmac, attempts, expires_at < now() AS expired, password_hash, username FROM email_codes
            WHERE email = \(email) AND purpose = \(purpose.rawValue) ORDER BY id FOR UPDATE
            """
        ).rows
        guard !rows.isEmpty else { return .missing }
        if try rows.allSatisfy({ try $0.get("attempts", as: Int.self) >= Self.maxAttempts }) { return .locked }
        let candidate = Array(digest(code, email: email, purpose: purpose).utf8)
        var match: PostgresRow?
        for row in rows where try row.get("attempts", as: Int.self) < Self.maxAttempts {
            // Every live code is compared, so the time taken does not say which one matched.
            if Digest.constantTimeEquals(Array(try row.get("code_hmac", as: String.self).utf8), candidate) { match = row }
        }
        guard let match else {
            try db.execute("UPDATE email_codes SET attempts = attempts + 1 WHERE email = \(email) AND purpose = \(purpose.rawValue)")
            return .wrong
        }
        if try match.get("expired", as: Bool.self) { return .expired }
        try db.execute("DELETE FROM email_codes WHERE email = \(email) AND purpose = \(purpose.rawValue)")
        let hash: String? = try match.get("password_hash")
        return .accepted(hash.map { Credentials(passwordHash: $0, username: try? match.get("username")) })
    }

    /// The error a non-accepted outcome becomes: the same for every one (wrong, expired, locked, or no code
    /// at all), so the answer never tells whether the address has an account. A locked code stays locked:
    /// even the right code fails until a new one is sent.
    public static func error(for outcome: Outcome) -> HTTPError {
        HTTPError(
            .badRequest, code: "invalid_code",
            message: "That code is not right, or has expired; after five wrong tries, ask for a new code.")
    }
}

/// How often codes may be sent, so that nobody can use up an address's codes (and lock its owner out of
/// signing up or resetting) and nobody can bomb an inbox: per address *and* requesting client, one a minute
/// and five an hour; per address from every client together, twenty an hour; per client across addresses,
/// `CODE_SENDS_PER_ADDRESS_PER_HOUR` (30) an hour. Redis counters keyed by hashes: no email address in Redis.
public struct CodeSendLimits {
    public static let cooldownSeconds = 60
    public static let perHour = 5
    public static let perAddressPerHour = 20

    let redis: RedisConnection
    let perClientPerHour: Int

    public init(_ context: Context) throws {
        redis = context.redis
        perClientPerHour = try context.config.integer("CODE_SENDS_PER_ADDRESS_PER_HOUR", default: 30, range: 1...1_000_000)
    }

    /// Claims a send of a code to `email` asked for by `client`, or throws 429 with Retry-After.
    public func claim(email: String, purpose: EmailCodes.Purpose, client: String) throws {
        if let refusal = try refusal(email: email, purpose: purpose, client: client) { throw refusal }
    }

    /// The same, answering false instead of throwing when the limits say no (sign-up answers alike for
    /// every address, so it must not say 429).
    public func claimIfAllowed(email: String, purpose: EmailCodes.Purpose, client: String) throws -> Bool {
        try refusal(email: email, purpose: purpose, client: client) == nil
    }

    /// Claims the send and returns nil, or returns why it is refused (nothing claimed).
    func refusal(email: String, purpose: EmailCodes.Purpose, client: String) throws -> HTTPError? {
        let target = "\(purpose.rawValue):\(Encoding.hex(Digest.sha256(email)).prefix(32))"
        let clientHash = Encoding.hex(Digest.sha256(client)).prefix(16)
        let pair = "\(target):\(clientHash)"
        let reply = try redis.run(
            Self.script,
            keys: [
                "otp:cooldown:\(pair)", "otp:hourly:\(pair)", "otp:hourly:\(target)", "otp:client:\(clientHash)",
            ], arguments: [String(Self.cooldownSeconds), String(Self.perHour), String(Self.perAddressPerHour), String(perClientPerHour)])
        guard let result = reply.array, result.count == 2, let verdict = result[0].integer, let wait = result[1].integer else {
            throw RedisError.reply("unexpected reply from the send-limit script")
        }
        switch verdict {
        case 1:
            return HTTPError(
                .tooManyRequests, code: "resend_cooldown",
                message: "A code was just sent; wait \(wait) seconds before asking for another.",
                headers: [("Retry-After", String(max(1, wait)))])
        case 2:
            return HTTPError(
                .tooManyRequests, code: "too_many_codes",
                message: "Too many codes were sent to this address in the last hour; try again in \((wait + 59) / 60) minutes.",
                headers: [("Retry-After", String(max(1, wait)))])
        default:
            return nil
        }
    }

    // KEYS: cooldown and hourly counter of the (address, client) pair, hourly counters of the address and
    // of the client. ARGV: cooldown seconds, then the three hourly caps. Returns {0, 0} when allowed,
    // {1, ttl} in the cooldown, {2, ttl} over an hourly cap (the longest wait).
    static let script = RedisScript(
        """
        if redis.call('EXISTS', KEYS[1]) == 1 then return {1, redis.call('TTL', KEYS[1])} end
        local wait = 0
        for i = 2, 4 do
            if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then wait = math.max(wait, redis.call('TTL', KEYS[i])) end
        end
        if wait > 0 then return {2, wait} end
        redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1]))
        for i = 2, 4 do
            if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], 3600) end
        end
        return {0, 0}
        """)
}
