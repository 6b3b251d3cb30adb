public import SharedKitCore
public import SharedKitStores

/// Login sessions in Redis. The browser holds a 256-bit random token in a cookie; Redis holds only its
/// SHA-256 (`session:<hex>`, a hash with the user, the CSRF token and the creation time) with the idle
/// timeout as TTL, plus a per-user set of session hashes so all of a user's sessions can be revoked.
public struct SessionStore {
    public struct Session: Sendable {
        /// Hex SHA-256 of the token: the session's identity in Redis and in logs.
        public let id: String
        public let userID: UserID
        public let csrfToken: String
        public let createdAt: Int64
        public let isAdmin: Bool
    }

    public struct Issued: Sendable {
        public let token: String
        public let session: Session
    }

    public struct Lifetimes: Sendable {
        public let idleSeconds: Int
        public let absoluteSeconds: Int
        public let adminIdleSeconds: Int

        public init(config: Config) throws {
            idleSeconds = try config.integer("SESSION_IDLE_SECONDS", default: 7 * 86_400, range: 60...365 * 86_400)
            absoluteSeconds = try config.integer("SESSION_ABSOLUTE_SECONDS", default: 30 * 86_400, range: 60...365 * 86_400)
            adminIdleSeconds = try config.integer("ADMIN_SESSION_IDLE_SECONDS", default: 30 * 60, range: 60...365 * 86_400)
        }
    }

    let redis: RedisConnection
    let lifetimes: Lifetimes
    let now: () -> Int64

    public init(redis: RedisConnection, lifetimes: Lifetimes, now: @escaping () -> Int64) {
        self.redis = redis
        self.lifetimes = lifetimes
        self.now = now
    }

    static func key(_ id: String) -> String { "session:\(id)" }
    static func userKey(_ userID: UserID) -> String { "user_sessions:\(userID)" }
    public static func id(forToken token: String) -> String { Encoding.hex(Digest.sha256(token)) }

    /// A new session with a new token (never one the client offered: no fixation).
    public func create(userID: UserID, isAdmin: Bool) throws -> Issued {
        let token = Random.token(byteCount: 32)
        let session = Session(
            id: Self.id(forToken: token), userID: userID, csrfToken: Random.token(byteCount: 32),
            createdAt: now(), isAdmin: isAdmin)
        let idle = isAdmin ? min(lifetimes.adminIdleSeconds, lifetimes.idleSeconds) : lifetimes.idleSeconds
        try redis.run(
            Self.createScript, keys: [Self.key(session.id), Self.userKey(userID)],
            arguments: [
                userID.text, session.csrfToken, String(session.createdAt), isAdmin ? "1" : "0", String(idle),
                String(lifetimes.absoluteSeconds), session.id,
            ])
        return Issued(token: token, session: session)
    }

    /// The live session for a cookie token, its idle timer renewed; nil when unknown, idle too long or
    /// past its absolute lifetime.
    public func find(token: String) throws -> Session? {
        try find(token: token, charging: nil)?.session
    }

    /// The live session, renewed, and when a budget is given one request of it spent from the owner's
    /// bucket: all in one Redis round trip (the hot path of every signed-in read).
    public func find(token: String, charging budget: RateLimiter.Budget?) throws -> (session: Session, decision: RateLimiter.Decision?)? {
        guard !token.isEmpty, token.utf8.count <= 128 else { return nil }
        let id = Self.id(forToken: token)
        let reply = try redis.run(
            Self.findScript, keys: [Self.key(id)],
            arguments: [
                String(lifetimes.idleSeconds), String(min(lifetimes.adminIdleSeconds, lifetimes.idleSeconds)),
                String(now()), String(lifetimes.absoluteSeconds), id,
            ] + (budget.map { [$0.name] + $0.scriptArguments } ?? []))
        guard let parts = reply.array, let fields = parts.first?.array, fields.count == 4,
            let userID = fields[0].string.flatMap(UserID.init), let csrf = fields[1].string,
            let created = fields[2].string.flatMap({ Int64($0) })
        else {
            return nil
        }
        let session = Session(id: id, userID: userID, csrfToken: csrf, createdAt: created, isAdmin: fields[3].string == "1")
        guard let budget else { return (session, nil) }
        guard parts.count == 2, let decision = RateLimiter.Decision(reply: parts[1], budget: budget) else {
            throw RedisError.reply("unexpected reply from the session script")
        }
        return (session, decision)
    }

    /// Gives a session an admin's (shorter) idle timeout.
    public func markAdmin(_ session: Session) throws {
        try redis.command("HSET", Self.key(session.id), "admin", "1")
        try redis.command("EXPIRE", Self.key(session.id), String(min(lifetimes.adminIdleSeconds, lifetimes.idleSeconds)))
    }

    public func delete(id: String, userID: UserID) throws {
        try redis.command("DEL", Self.key(id))
        try redis.command("SREM", Self.userKey(userID), id)
    }

    /// Ends every session of a user, except one when given (a password change keeps the current one).
    @discardableResult
    public func revokeAll(userID: UserID, except keep: String? = nil) throws -> Int {
        let reply = try redis.run(Self.revokeScript, keys: [Self.userKey(userID)], arguments: [keep ?? ""])
        return reply.integer ?? 0
    }

    /// How many live sessions a user has (dead index entries are pruned on the way).
    public func count(userID: UserID) throws -> Int {
        try redis.run(Self.countScript, keys: [Self.userKey(userID)], arguments: []).integer ?? 0
    }

    // KEYS: session key, user index. ARGV: user, csrf, created, admin, idle ttl, absolute ttl, session id.
    static let createScript = RedisScript(
        """
        redis.call('HSET', KEYS[1], 'user', ARGV[1], 'csrf', ARGV[2], 'created', ARGV[3], 'admin', ARGV[4])
        redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
        redis.call('SADD', KEYS[2], ARGV[7])
        redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
        return 1
        """)

    // KEYS: session key. ARGV: idle ttl, admin idle ttl, now, absolute lifetime, session id, and optionally a
    // budget: its name, emission interval and tolerance. Finds, ends (past its absolute lifetime) or renews
    // the session, then charges the owner's bucket. Returns {} or {{user, csrf, created, admin}} or
    // {{user, csrf, created, admin}, decision}.
    // The bucket's key is made here from the session's user, so it is not among KEYS: fine on one Redis
    // and under Sentinel, not on Redis Cluster (where it would have to be read first).
    static let findScript = RedisScript(
        RateLimiter.gcra + """
            local fields = redis.call('HMGET', KEYS[1], 'user', 'csrf', 'created', 'admin')
            local user, created = fields[1], fields[3]
            if not user or not created or not fields[2] then return {} end
            if tonumber(ARGV[3]) - tonumber(created) >= tonumber(ARGV[4]) then
                redis.call('DEL', KEYS[1])
                redis.call('SREM', 'user_sessions:' .. user, ARGV[5])
                return {}
            end
            if not fields[4] then fields[4] = '0' end
            redis.call('EXPIRE', KEYS[1], tonumber(fields[4] == '1' and ARGV[2] or ARGV[1]))
            if ARGV[6] == nil then return {fields} end
            return {fields, gcra({'rl:' .. ARGV[6] .. ':u:' .. user}, tonumber(ARGV[7]), tonumber(ARGV[8]))}
            """)

    // KEYS: user index. ARGV: session id to keep ('' for none). Returns how many were ended.
    static let revokeScript = RedisScript(
        """
        local ended = 0
        for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            if id ~= ARGV[1] then
                ended = ended + redis.call('DEL', 'session:' .. id)
                redis.call('SREM', KEYS[1], id)
            end
        end
        return ended
        """)

    static let countScript = RedisScript(
        """
        local live = 0
        for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            if redis.call('EXISTS', 'session:' .. id) == 1 then live = live + 1 else redis.call('SREM', KEYS[1], id) end
        end
        return live
        """)
}
