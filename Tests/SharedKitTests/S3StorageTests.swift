#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import SharedKit
@testable import SharedKitHTTP

/// Against moto's S3 server, which `make test` starts (TEST_S3_ENDPOINT).
@Suite(.serialized) struct S3StorageTests {
    let endpoint: String
    let storage: S3MediaStorage

    init() throws {
        guard let endpoint = TestSupport.environment("TEST_S3_ENDPOINT") else {
            fatalError("TEST_S3_ENDPOINT is not set: run the suite with `make test`, which starts an S3 server")
        }
        self.endpoint = endpoint
        let bucket = "atelier-test-\(Random.hex(byteCount: 4))"
        let config = try TestSupport.config([
            "S3_BUCKET": bucket, "S3_ENDPOINT": endpoint, "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing",
        ])
        storage = try #require(try S3MediaStorage(config: config))
        // Create the bucket (a signed PUT on the bucket path).
        let made = try HTTPClient().send(method: "PUT", url: "\(endpoint)/\(bucket)", sigV4: storage.sigV4)
        #expect((200...299).contains(made.status))
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

    @Test func unreachableStorageIsA503NotACrash() throws {
        let config = try TestSupport.config([
            "S3_BUCKET": "b", "S3_ENDPOINT": "http://127.0.0.1:1", "S3_ACCESS_KEY_ID": "x", "S3_SECRET_ACCESS_KEY": "y",
        ])
        let dead = try #require(try S3MediaStorage(config: config))
        #expect(throws: DependencyUnavailable.self) { try dead.put([1, 2, 3], key: "ab/cd.webp", contentType: "image/webp") }
    }
}
