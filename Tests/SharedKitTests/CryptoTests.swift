import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitHTTP

@Suite struct CryptoTests {
    init() { Random.initialise() }

    @Test func sha256KnownAnswer() {
        #expect(Encoding.hex(Digest.sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hmacSHA256RFC4231Case2() {
        let mac = Digest.hmacSHA256(key: "Jefe", message: "what do ya want for nothing?")
        #expect(Encoding.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hmacWithEmptyKeyMatchesTheStandard() {
        // HMAC-SHA256("", "") from RFC 4231 test tooling.
        #expect(Encoding.hex(Digest.hmacSHA256(key: [], message: [])) == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }

    @Test func constantTimeEquality() {
        #expect(Digest.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!Digest.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!Digest.constantTimeEquals([1, 2], [1, 2, 3]))
    }

    @Test func encodingsRoundTrip() {
        let bytes = Random.bytes(33)
        #expect(Encoding.fromHex(Encoding.hex(bytes)) == bytes)
        #expect(Encoding.fromBase64(Encoding.base64(bytes)) == bytes)
        #expect(Encoding.fromBase64URL(Encoding.base64URL(bytes)) == bytes)
        #expect(Random.token().count == 43)
    }

    @Test func argon2idHashesCarryTheirParameters() throws {
        let hasher = PasswordHasher()
        let hash = try hasher.hash("correct horse battery staple")
        #expect(hash.hasPrefix("$argon2id$v=19$m=19456,t=2,p=1$"))
        #expect(hasher.verify("correct horse battery staple", against: hash))
        #expect(!hasher.verify("correct horse battery stapl", against: hash))
        #expect(!hasher.verify("", against: hash))
    }
}

@Suite struct StandardWebhookTests {
    let hook = StandardWebhook(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")!
    let body = Array(#"{"test": 2432232314}"#.utf8)
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    let vector = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test func publishedTestVector() throws {
        #expect(hook.signature(id: id, timestamp: "1614265330", body: body) == vector)
        try hook.verify(id: id, timestamp: "1614265330", signatures: vector, body: body, now: 1_614_265_330)
    }

    @Test func rejections() {
        func failure(
            _ id: String?, _ ts: String?, _ sig: String?, now: Int64 = 1_614_265_330, body: [UInt8]? = nil
        ) -> StandardWebhook.Failure? {
            do { try hook.verify(id: id, timestamp: ts, signatures: sig, body: body ?? self.body, now: now); return nil } catch let error
                as StandardWebhook.Failure
            { return error } catch { return nil }
        }
        #expect(failure(nil, "1614265330", vector) == .missingHeaders)
        #expect(failure(id, nil, vector) == .missingHeaders)
        #expect(failure(id, "1614265330", nil) == .missingHeaders)
        #expect(failure(id, "not-a-number", vector) == .badTimestamp)
        #expect(failure(id, "1614265330", vector, now: 1_614_265_330 + 301) == .staleTimestamp)
        #expect(failure(id, "1614265330", vector, now: 1_614_265_330 - 301) == .staleTimestamp)
        #expect(failure(id, "1614265330", vector, now: 1_614_265_330 + 300) == nil)
        #expect(failure(id, "1614265330", vector, body: Array(#"{"test": 2432232315}"#.utf8)) == .noMatchingSignature)
        #expect(failure(id, "1614265330", "v1,AAAA" + String(vector.dropFirst(7))) == .noMatchingSignature)
        // The sender's timestamp at the ends of Int64 is stale, not a trap that ends the process.
        #expect(failure(id, "-9223372036854775808", vector) == .staleTimestamp)
        #expect(failure(id, "9223372036854775807", vector, now: -1) == .staleTimestamp)
        #expect(failure(id, "9223372036854775808", vector) == .badTimestamp)
    }

    @Test func oneValidSignatureAmongSeveralIsEnough() throws {
        try hook.verify(id: id, timestamp: "1614265330", signatures: "v1,Zm9v \(vector) v2,bar", body: body, now: 1_614_265_330)
    }
}

@Suite struct HTTPHeaderTests {
    @Test func headerValuesLoseTheirLineEnd() {
        let sink = TransferSink(limit: 10)
        for line in ["HTTP/1.1 429 Too Many Requests\r\n", "Retry-After: 1\r\n", "Content-Type:  application/json \r\n", "\r\n"] {
            Array(line.utf8).withUnsafeBytes { sink.header($0) }
        }
        #expect(sink.headers.first { $0.0 == "Retry-After" }?.1 == "1")
        #expect(sink.headers.first { $0.0 == "Content-Type" }?.1 == "application/json")
    }

    @Test func mailLinesEndInCRLFWhateverTheyCameWith() {
        #expect(MailMessage.crlf("a\r\nb\nc") == "a\r\nb\r\nc")
    }
}
