import SharedKitCore
import SharedKitRuntime
public import SharedKitStores

/// Failed logins, counted in Redis, so guessing a password is impossible without handing attackers a
/// lockout of someone else's account:
/// - per account *and* client address: 10 failures in 15 minutes lock that pair only, so the owner, from
///   anywhere else, still logs in with the right password;
/// - per account from every address together: past a ceiling of 100 failures (counted over a day that
///   starts again with each failure) every further failure blocks the account for twice as long as the
///   one before, 1 s, 2 s, 4 s … up to an hour. A guessing attack spread over many addresses slows to a
///   trickle, while a block that nobody keeps feeding ends within seconds; a reset by emailed code lifts it;
/// - per client address across accounts: 100 failures in 15 minutes stop one address trying many accounts.
/// Keys hold hashes, never an email address.
public struct LoginThrottle {
    public static let windowSeconds = 900
    public static let perAccountAndAddress = 10
    public static let perAccount = 100
    public static let perAddress = 100
    /// The account-wide count is forgotten after this long without a failure: well past the longest
    /// block, so waiting a block out never resets the doubling.
    public static let accountWindowSeconds = 86_400
    /// The longest block past the account-wide ceiling.
    public static let maxBlockSeconds = 3600

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
    static func blockKey(_ email: String) -> String { "login:block:\(accountHash(email))" }

    func keys(_ email: String, _ address: String) -> [String] {
        [Self.pairKey(email, address), Self.addressKey(address), Self.accountKey(email), Self.blockKey(email)]
    }

    /// Throws 429 with Retry-After when a counter is at its limit or the account is blocked.
    public func check(email: String, address: String) throws {
        let reply = try redis.run(
            Self.checkScript, keys: keys(email, address),
            arguments: [
                String(Self.perAccountAndAddress), String(Self.perAddress),
            ])
        if let wait = reply.integer, wait > 0 {
            let when = wait < 60 ? "\(wait) second\(wait == 1 ? "" : "s")" : "\((wait + 59) / 60) minutes"
            throw HTTPError(
                .tooManyRequests, code: "too_many_attempts",
                message: "Too many failed logins; try again in \(when) or reset your password.",
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
        try redis.run(
            Self.failScript, keys: keys(email, address),
            arguments: [
                String(Self.windowSeconds), String(Self.accountWindowSeconds), String(Self.perAccount), String(Self.maxBlockSeconds),
            ])
    }

    /// The right password from this address clears this address's count for the account; what other
    /// addresses did stays counted.
    public func recordSuccess(email: String, address: String) throws {
        try redis.command("DEL", Self.pairKey(email, address))
    }

    /// A reset by emailed code proves the mailbox: the account's own count and block are lifted too.
    public func recordRecovery(email: String, address: String) throws {
        try redis.command("DEL", Self.pairKey(email, address), Self.accountKey(email), Self.blockKey(email))
    }

    // KEYS: pair count, address count, account count, account block. ARGV: the pair and address limits.
    // Returns the seconds until the longest block ends (rounded up), or 0.
    static let checkScript = RedisScript(
        """
        local wait = 0
        for i = 1, 2 do
            if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then wait = math.max(wait, redis.call('TTL', KEYS[i])) end
        end
        local block = redis.call('PTTL', KEYS[4])
        if block > 0 then wait = math.max(wait, math.ceil(block / 1000)) end
        return wait
        """)

    // KEYS as above. ARGV: the pair/address window, the account window, the account ceiling, the longest
    // block. The pair and address counts last a fixed window from their first failure; the account count
    // lasts as long as failures keep coming, and from the ceiling on each failure blocks for 2^(past) s.
    static let failScript = RedisScript(
        """
        for i = 1, 2 do
            if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1])) end
        end
        local count = redis.call('INCR', KEYS[3])
        redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
        local past = count - tonumber(ARGV[3])
        if past >= 0 then
            local seconds = math.min(2 ^ math.min(past, 20), tonumber(ARGV[4]))
            redis.call('SET', KEYS[4], '1', 'EX', seconds)
        end
        return 1
        """)
}
