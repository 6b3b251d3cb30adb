import SharedKit
import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// AWS Signature Version 4 for S3, as AWS documents it ("Authenticating Requests: Using the Authorization
/// Header" and "Using Query Parameters"), checked against AWS's published examples in the tests.
///
/// Signed here rather than by libcurl's CURLOPT_AWS_SIGV4: Debian 12's libcurl (7.88) never sends
/// `x-amz-content-sha256`, which S3 requires on every header-signed request, and signs an `Expect:` header
/// it does not send. Here every signed header is one the request carries, and nothing else.
public struct S3Signature: Sendable {
    public let accessKey: String
    let secretKey: String
    public let region: String

    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = Encoding.hex(Digest.sha256([UInt8]()))

    public init(accessKey: String, secretKey: String, region: String) {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
    }

    /// The headers to add to a request (`x-amz-date`, `x-amz-content-sha256`, `Authorization`), signing
    /// those plus `headers` (which must include `host`, exactly as sent).
    /// - Parameters: path is the URI path as sent (already encoded); query the canonical query string.
    public func sign(
        method: String, path: String, query: String = "", headers: [(String, String)], payloadHash: String,
        amzDate: String
    ) -> [(String, String)] {
        let all = headers + [("x-amz-content-sha256", payloadHash), ("x-amz-date", amzDate)]
        return [
            ("x-amz-content-sha256", payloadHash), ("x-amz-date", amzDate),
            (
                "Authorization",
                authorization(method: method, path: path, query: query, headers: all, payloadHash: payloadHash, amzDate: amzDate)
            ),
        ]
    }

    /// The `Authorization` header's value for a request carrying exactly `headers`, all of them signed.
    public func authorization(
        method: String, path: String, query: String, headers: [(String, String)], payloadHash: String,
        amzDate: String
    ) -> String {
        let canonicalHeaders =
            headers
            .map { (name: $0.0.lowercased(), value: Self.trimmed($0.1)) }
            .sorted { $0.name < $1.name }
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        let canonical = [
            method, path, query,
            canonicalHeaders.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders, payloadHash,
        ].joined(separator: "\n")
        let day = String(amzDate.prefix(8))
        return
            "AWS4-HMAC-SHA256 Credential=\(accessKey)/\(scope(day)),SignedHeaders=\(signedHeaders),Signature=\(signature(canonical, amzDate: amzDate))"
    }

    /// A pre-signed URL's query (everything but the scheme, host and path), signing the host header only.
    public func presignedQuery(method: String, host: String, path: String, amzDate: String, expires: Int) -> String {
        let day = String(amzDate.prefix(8))
        let query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(accessKey)/\(scope(day))"),
            ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ].map { "\(Self.encode($0.0, slash: false))=\(Self.encode($0.1, slash: false))" }.sorted().joined(separator: "&")
        let canonical = [method, path, query, "host:\(host)\n", "host", Self.unsignedPayload].joined(separator: "\n")
        return "\(query)&X-Amz-Signature=\(signature(canonical, amzDate: amzDate))"
    }

    func scope(_ day: String) -> String { "\(day)/\(region)/s3/aws4_request" }

    func signature(_ canonicalRequest: String, amzDate: String) -> String {
        let day = String(amzDate.prefix(8))
        let toSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope(day))\n\(Encoding.hex(Digest.sha256(canonicalRequest)))"
        var key = Digest.hmacSHA256(key: Array("AWS4\(secretKey)".utf8), message: Array(day.utf8))
        for part in [region, "s3", "aws4_request"] { key = Digest.hmacSHA256(key: key, message: Array(part.utf8)) }
        return Encoding.hex(Digest.hmacSHA256(key: key, message: Array(toSign.utf8)))
    }

    /// Leading and trailing spaces go, inner runs of spaces become one (the canonical header value).
    static func trimmed(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    /// `20130524T000000Z` for a Unix time.
    public static func amzDate(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32, _ w: Int = 2) -> String { let s = String(n); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return
            "\(pad(parts.tm_year + 1900, 4))\(pad(parts.tm_mon + 1))\(pad(parts.tm_mday))T\(pad(parts.tm_hour))\(pad(parts.tm_min))\(pad(parts.tm_sec))Z"
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX (and '/' too unless `slash`).
    public static func encode(_ text: String, slash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c) || (slash && c == "/")) {
                out.append(c)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
