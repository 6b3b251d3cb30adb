/// Failed logins are counted per account and per client address in fixed 15-minute windows. Ten failures
/// for one account (or a hundred from one address) refuse further attempts until the window ends, even
/// with the right password; the real user is never locked out for longer than that window.
public struct LoginThrottle {
    public static let windowSeconds = 900
    public static let perAccount = 10
    public static let perAddress = 100

    let redis: RedisConnection

    public init(redis: RedisConnection) {
        self.redis = redis
    }

    static func accountKey(_ email: String) -> String { "login:fail:\(Encoding.hex(Digest.sha256(email)).prefix(32))" }
    static func addressKey(_ address: String) -> String { "login:ipfail:\(address)" }

    /// Throws 429 with Retry-After when either counter is at its limit.
    public func check(email: String, address: String) throws {
        let reply = try redis.run(Self.checkScript, keys: [Self.accountKey(email), Self.addressKey(address)], arguments: [
            String(Self.perAccount), String(Self.perAddress),
        ])
        if let wait = reply.integer, wait > 0 {
            throw HTTPError(.tooManyRequests, code: "too_many_attempts",
                            message: "Too many failed logins; try again in \((wait + 59) / 60) minutes or reset your password.",
                            headers: [("Retry-After", String(wait))])
        }
    }

    public func recordFailure(email: String, address: String) throws {
        try redis.run(Self.failScript, keys: [Self.accountKey(email), Self.addressKey(address)], arguments: [String(Self.windowSeconds)])
    }

    public func recordSuccess(email: String) throws {
        try redis.command("DEL", Self.accountKey(email))
    }

    // Returns the seconds until the blocking window ends, or 0.
    static let checkScript = RedisScript("""
        local wait = 0
        if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then wait = redis.call('TTL', KEYS[1]) end
        if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('TTL', KEYS[2])) end
        return wait
        """)

    static let failScript = RedisScript("""
        for _, key in ipairs(KEYS) do
            if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[1])) end
        end
        return 1
        """)
}
