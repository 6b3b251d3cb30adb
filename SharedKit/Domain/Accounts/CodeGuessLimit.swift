import SharedKitCore
import SharedKitRuntime
import SharedKitStores

/// Wrong emailed codes from one client address, across every account: each code allows five tries, but
/// one address trying codes for many accounts is stopped at `CODE_GUESSES_PER_ADDRESS_PER_HOUR` (50) wrong
/// ones an hour (a Redis counter keyed by the address).
public struct CodeGuessLimit {
    let redis: RedisConnection
    let perHour: Int

    public init(_ context: Context) throws {
        redis = context.redis
        perHour = try context.config.integer("CODE_GUESSES_PER_ADDRESS_PER_HOUR", default: 50, range: 1...1_000_000)
    }

    static func key(_ address: String) -> String { "otp:ipfail:\(address)" }

    /// Throws 429 `too_many_attempts` with Retry-After while the address is over its limit.
    public func check(address: String) throws {
        let reply = try redis.run(Self.checkScript, keys: [Self.key(address)], arguments: [String(perHour)])
        if let wait = reply.integer, wait > 0 {
            throw HTTPError(
                .tooManyRequests, code: "too_many_attempts",
                message: "Too many wrong codes were tried from here; try again in \((wait + 59) / 60) minutes.",
                headers: [("Retry-After", String(wait))])
        }
    }

    public func recordWrong(address: String) throws {
        try redis.run(Self.failScript, keys: [Self.key(address)], arguments: ["3600"])
    }

    static let checkScript = RedisScript(
        """
        if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then return redis.call('TTL', KEYS[1]) end
        return 0
        """)

    static let failScript = RedisScript(
        """
        if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1])) end
        return 1
        """)
}
