import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitHTTP

/// Signature V4 against the examples AWS publishes in "Authenticating Requests: Using the Authorization
/// Header (AWS Signature Version 4)" (GET Object with a Range header) and "Authenticating Requests: Using
/// Query Parameters" (a pre-signed GET of examplebucket/test.txt for 86400 seconds).
@Suite struct S3SignatureTests {
    static let accessKey = "AKIAIOSFODNN7EXAMPLE"
    static let secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    static let may24of2013: Int64 = 1_369_353_600

    @Test func headerSigningMatchesAWSsGetObjectExample() {
        let signature = S3Signature(accessKey: Self.accessKey, secretKey: Self.secretKey, region: "us-east-1")
        #expect(S3Signature.amzDate(Self.may24of2013) == "20130524T000000Z")
        let headers = signature.sign(
            method: "GET", path: "/test.txt",
            headers: [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9")],
            payloadHash: S3Signature.emptyPayloadHash, amzDate: "20130524T000000Z")
        #expect(S3Signature.emptyPayloadHash == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(headers.first { $0.0 == "x-amz-content-sha256" }?.1 == S3Signature.emptyPayloadHash)
        #expect(
            headers.first { $0.0 == "Authorization" }?.1
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test func presignedURLMatchesAWSsQueryExample() throws {
        let config = try TestSupport.config([
            "S3_BUCKET": "examplebucket", "S3_ENDPOINT": "https://s3.amazonaws.com", "S3_ADDRESSING": "virtual",
            "S3_ACCESS_KEY_ID": Self.accessKey, "S3_SECRET_ACCESS_KEY": Self.secretKey, "S3_PRESIGN_SECONDS": "86400",
        ])
        let storage = try #require(try S3MediaStorage(config: config, now: { Self.may24of2013 }))
        #expect(
            storage.url(for: "test.txt")
                == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        )
        #expect(storage.browserOrigin == "https://examplebucket.s3.amazonaws.com")
    }

    @Test func pathStyleAndVirtualHostedStyleLocations() throws {
        func storage(_ extra: [String: String]) throws -> S3MediaStorage {
            try #require(
                try S3MediaStorage(
                    config: try TestSupport.config(
                        [
                            "S3_BUCKET": "media", "S3_ENDPOINT": "http://127.0.0.1:9000/", "S3_ACCESS_KEY_ID": "k",
                            "S3_SECRET_ACCESS_KEY": "s",
                        ].merging(extra) { _, new in new })))
        }
        let path = try storage([:])
        #expect(path.location("ab/cd ef.webp").url == "http://127.0.0.1:9000/media/ab/cd%20ef.webp")
        #expect(path.location("ab/cd ef.webp").host == "127.0.0.1:9000")
        #expect(path.location(nil).path == "/media")
        #expect(path.browserOrigin == "http://127.0.0.1:9000")
        let virtual = try storage(["S3_ADDRESSING": "virtual"])
        #expect(virtual.location("ab/cd.webp").url == "http://media.127.0.0.1:9000/ab/cd.webp")
        #expect(virtual.location("ab/cd.webp").path == "/ab/cd.webp")
        let cdn = try storage(["S3_PUBLIC_URL": "https://cdn.example.com/media/"])
        #expect(cdn.url(for: "ab/cd.webp") == "https://cdn.example.com/media/ab/cd.webp")
        #expect(cdn.browserOrigin == "https://cdn.example.com")
        #expect(throws: Config.Invalid.self) { try storage(["S3_ADDRESSING": "dns"]) }
        #expect(throws: Config.Invalid.self) { try storage(["S3_ENDPOINT": "https://s3.amazonaws.com/media"]) }
    }
}
