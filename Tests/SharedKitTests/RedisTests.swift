import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitStores

@Suite(.serialized) struct RedisTests {
    let redis = RedisConnection(url: TestSupport.redisURL, timeoutMs: 2000)

    @Test func commandsByArgvWithTypedReplies() throws {
        let key = "test:\(Random.hex(byteCount: 4))"
        #expect(try redis.command("SET", key, "va lue\r\n$3") == .status("OK"))
        #expect(try redis.command("GET", key).string == "va lue\r\n$3")
        #expect(try redis.command("INCRBY", key + ":n", "5").integer == 5)
        #expect(try redis.command("GET", key + ":missing").isNull)
        #expect(throws: RedisError.self) { try redis.command("INCR", key) }
        try redis.command("DEL", key, key + ":n")
    }

    @Test func reconnectsAfterClientKill() throws {
        let id = try #require(try redis.command("CLIENT", "ID").integer)
        let admin = RedisConnection(url: TestSupport.redisURL)
        #expect(try admin.command("CLIENT", "KILL", "ID", String(id)).integer == 1)
        #expect(try redis.command("PING") == .status("PONG"))
        #expect(try redis.command("CLIENT", "ID").integer != id)
    }

    @Test func scriptsSurviveScriptFlush() throws {
        let script = RedisScript("return tonumber(ARGV[1]) + redis.call('INCR', KEYS[1])")
        let key = "test:script:\(Random.hex(byteCount: 4))"
        #expect(try redis.run(script, keys: [key], arguments: ["10"]).integer == 11)
        try RedisConnection(url: TestSupport.redisURL).command("SCRIPT", "FLUSH")
        #expect(try redis.run(script, keys: [key], arguments: ["10"]).integer == 12)
        try redis.command("DEL", key)
    }

    @Test func databaseNumberAndPasswordFromURL() throws {
        let endpoint = try #require(RedisConnection.parse("redis://:s%40cret@example.test:6380/3"))
        #expect(endpoint.address == .tcp(host: "example.test", port: 6380))
        #expect(endpoint.password == "s@cret")
        #expect(endpoint.database == 3)
        let user = try #require(RedisConnection.parse("redis://app:pw@[::1]/0"))
        #expect(user.username == "app")
        #expect(user.address == .tcp(host: "::1", port: 6379))
        #expect(RedisConnection.parse("unix:///run/redis.sock?db=2")?.database == 2)
        #expect(RedisConnection.parse("http://nope") == nil)
    }

    @Test func sentinelURLsNameTheSentinelsTheMasterAndItsCredentials() throws {
        let endpoint = try #require(RedisConnection.parse("redis-sentinel://:pw@10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26380/atelier/2"))
        #expect(
            endpoint.address
                == .sentinel(
                    nodes: [
                        .init(host: "10.0.0.5", port: 26379), .init(host: "10.0.0.6", port: 26379),
                        .init(host: "10.0.0.7", port: 26380),
                    ], master: "atelier"))
        #expect(endpoint.password == "pw")
        #expect(endpoint.database == 2)
        #expect(RedisConnection.parse("redis-sentinel://127.0.0.1:26379/atelier")?.database == 0)
        #expect(RedisConnection.parse("redis-sentinel://127.0.0.1:26379/") == nil)
        #expect(RedisConnection.parse("redis-sentinel://127.0.0.1/atelier") == nil)
    }

    @Test func noSentinelAnsweringIsA503NotAHang() throws {
        let redis = RedisConnection(url: "redis-sentinel://127.0.0.1:1,127.0.0.1:2/atelier", timeoutMs: 300)
        #expect(throws: DependencyUnavailable.self) { try redis.command("PING") }
    }

    @Test func selectsTheDatabaseFromTheURL() throws {
        let url = TestSupport.redisURL
        let db5 = RedisConnection(url: url[..<url.lastIndex(of: "/")!] + "/5")
        let key = "test:db:\(Random.hex(byteCount: 4))"
        try db5.command("SET", key, "five")
        #expect(try redis.command("GET", key).isNull)
        #expect(try db5.command("GET", key).string == "five")
        try db5.command("DEL", key)
    }

    @Test func unreachableRedisIsDependencyUnavailable() {
        let dead = RedisConnection(url: "redis://127.0.0.1:1/0", timeoutMs: 300)
        #expect(throws: DependencyUnavailable.self) { try dead.command("PING") }
    }
}
