public import SharedKitCore
public import SharedKitStores

/// Per-user and per-key request budgets, enforced with GCRA (as redis-cell does) in one atomic Lua
/// script per check: a budget of N per period with at most B at once admits a burst of B, then one
/// request every period/N. Keys carry no PII: `rl:<budget>:<user or key id>`.
public struct RateLimiter {
    public struct Budget: Sendable {
        public let name: String
        public let perMinute: Int
        public let burst: Int
    }

    public struct Budgets: Sendable {
        public let generateFree: Budget
        public let generatePremium: Budget
        public let read: Budget
        public let enhance: Budget

        public init(config: Config) throws {
            func budget(_ name: String, _ env: String, _ perMinute: Int, _ burst: Int) throws -> Budget {
                Budget(
                    name: name,
                    perMinute: try config.integer("RATE_\(env)_PER_MINUTE", default: perMinute, range: 1...1_000_000),
                    burst: try config.integer("RATE_\(env)_BURST", default: burst, range: 1...1_000_000))
            }
            generateFree = try budget("generate", "GENERATE_FREE", 10, 5)
            generatePremium = try budget("generate", "GENERATE_PREMIUM", 60, 20)
            read = try budget("read", "READ", 600, 100)
            enhance = try budget("enhance", "ENHANCE", 30, 10)
        }
    }

    public struct Decision: Sendable {
        public let allowed: Bool
        public let limit: Int
        public let remaining: Int
        public let resetSeconds: Int
        public let retryAfterSeconds: Int

        public var headers: [(String, String)] {
            var headers = [
                ("RateLimit-Limit", String(limit)), ("RateLimit-Remaining", String(remaining)), ("RateLimit-Reset", String(resetSeconds)),
            ]
            if !allowed { headers.append(("Retry-After", String(retryAfterSeconds))) }
            return headers
        }
    }

    let redis: RedisConnection

    public init(redis: RedisConnection) {
        self.redis = redis
    }

    /// Checks (and on success spends) one request against every subject's bucket: all must admit it.
    public func check(_ budget: Budget, subjects: [String]) throws -> Decision {
        let reply = try redis.run(Self.script, keys: subjects.map { budget.key(for: $0) }, arguments: budget.scriptArguments)
        guard let decision = Decision(reply: reply, budget: budget) else {
            throw RedisError.reply("unexpected reply from the rate-limit script")
        }
        return decision
    }

    // KEYS: one bucket per subject. ARGV: emission interval (ms), burst tolerance (ms).
    static let script = RedisScript(gcra + "return gcra(KEYS, tonumber(ARGV[1]), tonumber(ARGV[2]))")

    /// GCRA over a list of bucket keys, as a Lua function other scripts include (the session lookup charges
    /// a read in the same round trip). Returns {allowed, remaining, reset ms, retry-after ms}; buckets are
    /// only written when allowed.
    static let gcra = """
        local function gcra(keys, interval, tolerance)
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local tats = {}
            local worst = now
            for i, key in ipairs(keys) do
                local tat = tonumber(redis.call('GET', key) or now)
                if tat < now then tat = now end
                tats[i] = tat
                if tat > worst then worst = tat end
            end
            if worst - now > tolerance then
                return {0, 0, worst - now, worst - tolerance - now}
            end
            local newest = now
            for i, key in ipairs(keys) do
                local new_tat = tats[i] + interval
                redis.call('SET', key, new_tat, 'PX', new_tat - now + 1000)
                if new_tat > newest then newest = new_tat end
            end
            local remaining = math.floor((tolerance - (newest - now) + interval) / interval)
            if remaining < 0 then remaining = 0 end
            return {1, remaining, newest - now, 0}
        end

        """
}

extension RateLimiter.Budget {
    /// The bucket of one subject (`u:<user id>` or `k:<key id>`): no PII in keys.
    func key(for subject: String) -> String { "rl:\(name):\(subject)" }

    /// The GCRA parameters: one request every `period/N`, a burst of `burst`.
    var scriptArguments: [String] {
        let intervalMs = max(1, 60_000 / perMinute)
        return [String(intervalMs), String(intervalMs * (burst - 1))]
    }
}

extension RateLimiter.Decision {
    init?(reply: RedisReply, budget: RateLimiter.Budget) {
        guard let values = reply.array?.compactMap(\.integer), values.count == 4 else { return nil }
        self.init(
            allowed: values[0] == 1, limit: budget.burst, remaining: values[1],
            resetSeconds: (values[2] + 999) / 1000, retryAfterSeconds: max(1, (values[3] + 999) / 1000))
    }
}
