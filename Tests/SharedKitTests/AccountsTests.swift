import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitRuntime
@testable import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

@Suite struct AccountRulesTests {
    @Test func emailsAreNormalisedAndValidated() throws {
        #expect(try AccountRules.email("  Zoë.Smith@Example.COM ") == "zoë.smith@example.com")
        for bad in [
            "", "no-at-sign", "a@b", "@example.com", "a@@example.com", "a b@example.com", "a@.example.com", "a@example..com",
            "<a>@example.com",
        ] {
            #expect(throws: HTTPError.self, "\(bad)") { try AccountRules.email(bad) }
        }
    }

    @Test func passwordPolicyNamesTheProblem() {
        func code(_ password: String, email: String = "someone@example.com") -> String? {
            do { try AccountRules.password(password, email: email); return nil } catch let error as HTTPError { return error.code } catch {
                return "other"
            }
        }
        #expect(code("short1!") == "password_too_short")
        #expect(code(String(repeating: "a", count: 1025)) == "password_too_long")
        #expect(code("password1") == "password_too_common")
        #expect(code("12345678") == "password_too_common")
        #expect(code("qwertyuiop") == "password_too_common")
        #expect(code("someone2024", email: "someone@example.com") == "password_too_common")
        #expect(code("Correct-Horse-Battery-9") == nil)
        #expect(code("violet tram galaxy sandwich") == nil)
    }

    @Test func usernames() throws {
        #expect(try AccountRules.username("Zoe_99") == "zoe_99")
        for bad in ["ab", "A!", String(repeating: "x", count: 33), "with space", "émile"] {
            #expect(throws: HTTPError.self, "\(bad)") { try AccountRules.username(bad) }
        }
    }
}

@Suite struct MailMessageTests {
    @Test func renderedMessageIsRFC5322WithBothParts() {
        let message = AccountMail.verificationCode(to: "a@example.com", code: "012345", baseURL: "https://atelier.example")
        let text = String(
            decoding: message.rendered(from: "Atelier <no-reply@atelier.example>", messageIDDomain: "atelier.example"), as: UTF8.self)
        #expect(text.contains("From: Atelier <no-reply@atelier.example>\r\n"))
        #expect(text.contains("To: a@example.com\r\n"))
        #expect(text.contains("Content-Type: multipart/alternative; boundary="))
        #expect(text.contains("Content-Type: text/plain; charset=utf-8"))
        #expect(text.contains("Content-Type: text/html; charset=utf-8"))
        #expect(text.contains("https://atelier.example/verify"))
        #expect(!text.contains("\n\n") || text.contains("\r\n\r\n"))
        #expect(!text.replacing("\r\n", with: "").contains("\n"))
    }

    @Test func headerInjectionIsStripped() {
        let message = MailMessage(to: "a@example.com\r\nBcc: victim@example.com", subject: "Hi\r\nX: y", text: "t", html: "h")
        let text = String(decoding: message.rendered(from: "f@example.com", messageIDDomain: "example.com"), as: UTF8.self)
        #expect(!text.contains("\r\nBcc:"))
        #expect(!text.contains("\r\nX: y"))
    }

    @Test func addressInsideAngleBrackets() {
        #expect(MailMessage.address("Atelier <no-reply@atelier.test>") == "no-reply@atelier.test")
        #expect(MailMessage.address("plain@example.com") == "plain@example.com")
    }
}

/// Against the real PostgreSQL and Redis `make test` starts.
@Suite(.serialized) struct SessionAndCodeTests {
    let redis = RedisConnection(url: TestSupport.redisURL)
    let db = PostgresConnection(url: TestSupport.databaseURL)

    init() throws {
        Random.initialise()
        try Migrator(db: db).migrate(try Migrator.load(folder: TestSupport.environment("MIGRATIONS_DIR") ?? "Migrations"))
    }

    func store(now: @escaping () -> Int64, idle: Int = 3600, absolute: Int = 7200) throws -> SessionStore {
        let config = try TestSupport.config(["SESSION_IDLE_SECONDS": String(idle), "SESSION_ABSOLUTE_SECONDS": String(absolute)])
        return SessionStore(redis: redis, lifetimes: try .init(config: config), now: now)
    }

    @Test func redisHoldsOnlyAHashOfTheToken() throws {
        let sessions = try store(now: { 1_000 })
        let userA: UserID = TestSupport.newID()
        let issued = try sessions.create(userID: userA, isAdmin: false)
        #expect(issued.token.count == 43)  // 256 bits, base64url
        #expect(try redis.command("EXISTS", "session:\(issued.token)").integer == 0)
        #expect(try redis.command("EXISTS", "session:\(SessionStore.id(forToken: issued.token))").integer == 1)
        #expect(try sessions.find(token: issued.token)?.userID == userA)
        #expect(try sessions.find(token: "made-up-token") == nil)
    }

    @Test func absoluteLifetimeEndsAnActiveSession() throws {
        nonisolated(unsafe) var clock: Int64 = 10_000
        let sessions = try store(now: { clock }, idle: 3600, absolute: 7200)
        let userB: UserID = TestSupport.newID()
        let issued = try sessions.create(userID: userB, isAdmin: false)
        clock += 7199
        #expect(try sessions.find(token: issued.token) != nil)
        clock += 2
        #expect(try sessions.find(token: issued.token) == nil)
        #expect(try redis.command("EXISTS", "session:\(issued.session.id)").integer == 0)
        #expect(try redis.command("SISMEMBER", "user_sessions:\(userB)", issued.session.id).integer == 0)
    }

    /// The signed-in read's one Redis round trip: the session found and renewed, and one request spent
    /// from its owner's bucket (`rl:<budget>:u:<user>`), the same bucket `RateLimiter` keeps.
    @Test func findingASessionCanChargeItsOwnersBudget() throws {
        let sessions = try store(now: { WallClock.nowSeconds() })
        let userID: UserID = TestSupport.newID()
        let issued = try sessions.create(userID: userID, isAdmin: false)
        let budget = RateLimiter.Budget(name: "read", perMinute: 60, burst: 3)
        var decisions: [RateLimiter.Decision] = []
        for _ in 0..<4 {
            let found = try #require(try sessions.find(token: issued.token, charging: budget))
            #expect(found.session.userID == userID)
            decisions.append(try #require(found.decision))
        }
        #expect(decisions.map(\.allowed) == [true, true, true, false])
        #expect(decisions.map(\.remaining) == [2, 1, 0, 0])
        #expect(decisions[3].retryAfterSeconds >= 1)
        // The standalone limiter sees the same bucket: spent.
        #expect(try RateLimiter(redis: redis).check(budget, subjects: ["u:\(userID)"]).allowed == false)
        // No session, no charge: no bucket appears.
        func buckets() throws -> Int { try redis.command("KEYS", "rl:read:u:*").array?.count ?? 0 }
        let before = try buckets()
        #expect(try sessions.find(token: "made-up-token", charging: budget) == nil)
        #expect(try buckets() == before)
    }

    @Test func idleTimeoutIsTheRedisTTLAndAdminsGetAShorterOne() throws {
        let config = try TestSupport.config(["SESSION_IDLE_SECONDS": "3600", "ADMIN_SESSION_IDLE_SECONDS": "600"])
        let sessions = SessionStore(redis: redis, lifetimes: try .init(config: config), now: { WallClock.nowSeconds() })
        let user = try sessions.create(userID: TestSupport.newID(), isAdmin: false)
        let admin = try sessions.create(userID: TestSupport.newID(), isAdmin: true)
        #expect((3590...3600).contains(try redis.command("TTL", "session:\(user.session.id)").integer ?? 0))
        #expect((590...600).contains(try redis.command("TTL", "session:\(admin.session.id)").integer ?? 0))
        // Idle past the timeout: Redis expires the key and the session is gone.
        try redis.command("PEXPIRE", "session:\(user.session.id)", "1")
        var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
        nanosleep(&ts, nil)
        #expect(try sessions.find(token: user.token) == nil)
    }

    @Test func revokeAllKeepsOnlyTheOneAskedFor() throws {
        let sessions = try store(now: { WallClock.nowSeconds() })
        let userID: UserID = TestSupport.newID()
        let a = try sessions.create(userID: userID, isAdmin: false)
        let b = try sessions.create(userID: userID, isAdmin: false)
        let c = try sessions.create(userID: userID, isAdmin: false)
        #expect(try sessions.count(userID: userID) == 3)
        #expect(try sessions.revokeAll(userID: userID, except: b.session.id) == 2)
        #expect(try sessions.find(token: a.token) == nil)
        #expect(try sessions.find(token: b.token) != nil)
        #expect(try sessions.find(token: c.token) == nil)
        #expect(try sessions.revokeAll(userID: userID) == 1)
        #expect(try sessions.count(userID: userID) == 0)
    }

    @Test func codesAreSingleUseBoundAndLocked() throws {
        let codes = EmailCodes(db: db, secret: "s".padding(32))
        let email = "code-\(Random.hex(byteCount: 4))@example.test"
        let code = try codes.issue(email: email, purpose: .verify)
        #expect(code.count == 6 && code.allSatisfy(\.isNumber))
        let stored: String? = try db.query("SELECT code_hmac FROM email_codes WHERE email = \(email)").first?.get("code_hmac")
        #expect(stored != nil && stored != code && stored?.contains(code) == false)
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .reset, code: code) } == .missing)
        #expect(try db.transaction { try codes.redeem(email: "other-" + email, purpose: .verify, code: code) } == .missing)
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: code) } == .accepted(nil))
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: code) } == .missing)

        let second = try codes.issue(email: email, purpose: .verify)
        let wrong = second == "000000" ? "000001" : "000000"
        for _ in 0..<5 { #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: wrong) } == .wrong) }
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: second) } == .locked)

        let third = try codes.issue(email: email, purpose: .verify)
        try db.execute("UPDATE email_codes SET expires_at = now() - interval '1 second' WHERE email = \(email)")
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: third) } == .expired)
    }

    @Test func aNewResetCodeReplacesThePreviousOne() throws {
        let codes = EmailCodes(db: db, secret: "s".padding(32))
        let email = "replace-\(Random.hex(byteCount: 4))@example.test"
        let first = try codes.issue(email: email, purpose: .reset)
        var second = try codes.issue(email: email, purpose: .reset)
        while second == first { second = try codes.issue(email: email, purpose: .reset) }
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .reset, code: first) } == .wrong)
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .reset, code: second) } == .accepted(nil))
    }

    /// Each sign-up's code carries its own credentials; whichever code is entered decides, and ends the rest.
    @Test func signUpCodesEachCarryTheirOwnCredentials() throws {
        let codes = EmailCodes(db: db, secret: "s".padding(32))
        let email = "signups-\(Random.hex(byteCount: 4))@example.test"
        let owner = EmailCodes.Credentials(passwordHash: "hash-of-owner", username: "owner")
        let other = EmailCodes.Credentials(passwordHash: "hash-of-other", username: nil)
        let first = try codes.issue(email: email, purpose: .verify, credentials: owner)
        var second = try codes.issue(email: email, purpose: .verify, credentials: other)
        while second == first { second = try codes.issue(email: email, purpose: .verify, credentials: other) }
        #expect(try codes.newestSignUp(email: email)?.credentials == other)
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: first) } == .accepted(owner))
        #expect(try db.transaction { try codes.redeem(email: email, purpose: .verify, code: second) } == .missing)
        // At most three sign-ups stay live: the oldest goes.
        let kept = try (0..<4).map { n in
            try codes.issue(email: email, purpose: .verify, credentials: .init(passwordHash: "h\(n)", username: nil))
        }
        #expect(try db.query("SELECT count(*)::int AS n FROM email_codes WHERE email = \(email)").first?.get("n", as: Int.self) == 3)
        #expect(
            try db.transaction { try codes.redeem(email: email, purpose: .verify, code: kept[3]) }
                == .accepted(.init(passwordHash: "h3", username: nil)))
    }

    @Test func loginThrottleRefusesAfterTenFailuresForTheWindowOnly() throws {
        let throttle = LoginThrottle(redis: redis)
        let email = "throttle-\(Random.hex(byteCount: 4))@example.test"
        for _ in 0..<10 {
            try throttle.check(email: email, address: "192.0.2.1")
            try throttle.recordFailure(email: email, address: "192.0.2.1")
        }
        do {
            try throttle.check(email: email, address: "192.0.2.1")
            Issue.record("the 11th attempt should be refused")
        } catch let error as HTTPError {
            #expect(error.code == "too_many_attempts")
            let retry = Int(error.headers.first { $0.0 == "Retry-After" }?.1 ?? "0") ?? 0
            #expect((1...900).contains(retry))
        }
        #expect(throws: Never.self) { try throttle.check(email: email, address: "192.0.2.2") }  // the owner, elsewhere
        try redis.command(
            "DEL", LoginThrottle.pairKey(email, "192.0.2.1"), LoginThrottle.accountKey(email), LoginThrottle.addressKey("192.0.2.1"))
    }
}

private extension String {
    func padding(_ length: Int) -> String { String(repeating: self, count: length) }
}
