/// Failed logins, counted in Redis over a 15-minute window, so guessing a password is impossible without
/// handing attackers a lockout of someone else's account:
/// - per account *and* client address: 10 failures lock that pair only, so the owner, from anywhere else,
///   still logs in with the right password;
/// - per account from every address together: a ceiling of 100 failures stops a guessing attack spread over
///   many addresses (it locks the account for the rest of the window: the price of a distributed attack);
/// - per client address across accounts: 100 failures stop one address trying many accounts.
/// Keys hold hashes, never an email address.
public struct LoginThrottle {
    public static let windowSeconds = 900
    public static let perAccountAndAddress = 10
    public static let perAccount = 100
    public static let perAddress = 100

    let redis: RedisConnection

    public init(redis: RedisConnection) {
        self.redis = redis
    }

    static func accountHash(_ email: String) -> String { String(Encoding.hex(Digest.sha256(email)).prefix(32)) }
    static func pairKey(_ email: String, _ address: String) -> String {
        "login:fail:\(accountHash(email)):\(Encoding.hex(Digest.sha256(address)).prefix(16))"
    }
    static func accountKey(_ email: String) -> String { "login:fail:\(accountHash(email))" }
    static func addressKey(_ address: String) -> String { "login:ipfail:\(address)" }

    func keys(_ email: String, _ address: String) -> [String] {
        [Self.pairKey(email, address), Self.accountKey(email), Self.addressKey(address)]
    }

    /// Throws 429 with Retry-After when any counter is at its limit.
    public func check(email: String, address: String) throws {
        let reply = try redis.run(Self.checkScript, keys: keys(email, address), arguments: [
            String(Self.perAccountAndAddress), String(Self.perAccount), String(Self.perAddress),
        ])
        if let wait = reply.integer, wait > 0 {
            throw HTTPError(.tooManyRequests, code: "too_many_attempts",
                            message: "Too many failed logins; try again in \((wait + 59) / 60) minutes or reset your password.",
                            headers: [("Retry-After", String(wait))])
        }
    }

    /// A password check under the throttle: refused (429) while a counter is at its limit, a failure
    /// counted when `verify` says no. Login and every re-confirmation of a password go through here.
    public func guarded(email: String, address: String, _ verify: () throws -> Bool) throws -> Bool {
        try check(email: email, address: address)
        guard try verify() else {
            try recordFailure(email: email, address: address)
            return false
        }
        return true
    }

    public func recordFailure(email: String, address: String) throws {
        try redis.run(Self.failScript, keys: keys(email, address), arguments: [String(Self.windowSeconds)])
    }

    /// The right password from this address clears this address's count for the account; what other
    /// addresses did stays counted.
    public func recordSuccess(email: String, address: String) throws {
        try redis.command("DEL", Self.pairKey(email, address))
    }

    /// A reset by emailed code proves the mailbox: the account's own ceiling is lifted too.
    public func recordRecovery(email: String, address: String) throws {
        try redis.command("DEL", Self.pairKey(email, address), Self.accountKey(email))
    }

    // KEYS: the counters. ARGV: their limits, in order. Returns the seconds until the longest block ends, or 0.
    static let checkScript = RedisScript("""
        local wait = 0
        for i, key in ipairs(KEYS) do
            if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then wait = math.max(wait, redis.call('TTL', key)) end
        end
        return wait
        """)

    static let failScript = RedisScript("""
        for _, key in ipairs(KEYS) do
            if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[1])) end
        end
        return 1
        """)
}
