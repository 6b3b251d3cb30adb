import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitHTTP

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Against the strict S3 fake (Tests/e2e/fakes/s3.py: Signature V4 checked as AWS documents it), which
/// `make test` starts (TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY).
@Suite(.serialized) struct S3StorageTests {
    let endpoint: String
    let bucket: String
    let storage: S3MediaStorage

    init() throws {
        guard let endpoint = TestSupport.environment("TEST_S3_ENDPOINT") else {
            fatalError("TEST_S3_ENDPOINT is not set: run the suite with `make test`, which starts an S3 server")
        }
        self.endpoint = endpoint
        bucket = "atelier-test-\(Random.hex(byteCount: 4))"
        storage = try Self.storage(endpoint: endpoint, bucket: bucket)
        #expect((200...299).contains(try storage.createBucket()))
    }

    static func storage(
        endpoint: String, bucket: String, secret: String? = nil, _ extra: [String: String] = [:],
        now: @escaping @Sendable () -> Int64 = { WallClock.nowSeconds() }
    ) throws -> S3MediaStorage {
        let config = try TestSupport.config(
            [
                "S3_BUCKET": bucket, "S3_ENDPOINT": endpoint,
                "S3_ACCESS_KEY_ID": TestSupport.environment("TEST_S3_ACCESS_KEY") ?? "",
                "S3_SECRET_ACCESS_KEY": secret ?? TestSupport.environment("TEST_S3_SECRET_KEY") ?? "",
            ].merging(extra) { _, new in new })
        return try #require(try S3MediaStorage(config: config, now: now))
    }

    @Test func putReadDeleteRoundTrip() throws {
        let key = FileMediaStorage.newKey(extension: "webp")
        let bytes = Random.bytes(70_000)
        try storage.put(bytes, key: key, contentType: "image/webp")
        #expect(try storage.read(key: key) == bytes)
        try storage.delete(key: key)
        #expect(throws: DependencyUnavailable.self) { try storage.read(key: key) }
        try storage.delete(key: key)  // deleting what is gone is fine
    }

    @Test func presignedURLsLoadWithoutCredentialsAndExpire() throws {
        let key = FileMediaStorage.newKey(extension: "png")
        try storage.put(Array("hello".utf8), key: key, contentType: "image/png")
        let url = storage.url(for: key)
        #expect(url.contains("X-Amz-Signature="))
        let response = try HTTPClient().send(method: "GET", url: url)
        #expect(response.status == 200)
        #expect(response.body == Array("hello".utf8))
        #expect(response.header("Content-Type") == "image/png")
        // Tampering with the signed key fails.
        let tampered = url.replacing(key.suffix(8), with: "00000000")
        #expect(try HTTPClient().send(method: "GET", url: tampered).status != 200)
    }

    @Test func aWrongSecretIsRefusedBySignatureCheck() throws {
        let wrong = try Self.storage(endpoint: endpoint, bucket: bucket, secret: "not-the-secret")
        do {
            try wrong.put([1, 2, 3], key: FileMediaStorage.newKey(extension: "webp"), contentType: "image/webp")
            Issue.record("a PUT signed with the wrong secret was accepted")
        } catch let error as DependencyUnavailable {
            #expect("\(error)".contains("SignatureDoesNotMatch"))
        }
    }

    @Test func bucketsAddressedByVirtualHostAndPresignedURLsExpire() throws {
        // *.localhost resolves to this machine, so the bucket can be named in the host as AWS prefers.
        let port = endpoint.split(separator: ":").last.map(String.init) ?? ""
        let virtual = try Self.storage(endpoint: "http://localhost:\(port)", bucket: bucket, ["S3_ADDRESSING": "virtual"])
        let key = FileMediaStorage.newKey(extension: "png")
        try virtual.put(Array("virtual".utf8), key: key, contentType: "image/png")
        #expect(try storage.read(key: key) == Array("virtual".utf8))
        #expect(try HTTPClient().send(method: "GET", url: virtual.url(for: key)).status == 200)
        // Signed two days ago for one day: expired.
        let stale = try Self.storage(
            endpoint: endpoint, bucket: bucket, ["S3_PRESIGN_SECONDS": "86400"],
            now: { WallClock.nowSeconds() - 2 * 86_400 })
        let expired = try HTTPClient().send(method: "GET", url: stale.url(for: key))
        #expect(expired.status == 403)
        #expect(String(decoding: expired.body, as: UTF8.self).contains("expired"))
        try storage.delete(key: key)
    }

    @Test func unreachableStorageIsA503NotACrash() throws {
        let config = try TestSupport.config([
            "S3_BUCKET": "b", "S3_ENDPOINT": "http://127.0.0.1:1", "S3_ACCESS_KEY_ID": "x", "S3_SECRET_ACCESS_KEY": "y",
        ])
        let dead = try #require(try S3MediaStorage(config: config))
        #expect(throws: DependencyUnavailable.self) { try dead.put([1, 2, 3], key: "ab/cd.webp", contentType: "image/webp") }
    }
}
