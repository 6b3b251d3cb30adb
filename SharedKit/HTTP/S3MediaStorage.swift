#if canImport(Glibc)
import Glibc
#endif
public import SharedKit

/// Media in any S3-compatible bucket (path-style URLs), for deployments on several hosts. Requests are
/// signed with AWS Signature V4 by libcurl; the URLs browsers load are either the bucket's public URL or
/// pre-signed GET URLs (Signature V4 query signing), as configured.
public struct S3MediaStorage: MediaStorage {
    public let endpoint: String
    public let bucket: String
    public let region: String
    let accessKey: String
    let secretKey: String
    /// Where browsers load objects from when not pre-signing (a public bucket, a CDN).
    public let publicURL: String?
    public let presignSeconds: Int
    let http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: 60_000, maxResponseBytes: 200 * 1024 * 1024)
    let now: @Sendable () -> Int64

    /// nil when no `S3_BUCKET` is configured (media then live on the filesystem).
    public init?(config: Config, now: @escaping @Sendable () -> Int64 = { WallClock.nowSeconds() }) throws {
        guard let bucket = config.string("S3_BUCKET") else { return nil }
        guard let endpoint = config.string("S3_ENDPOINT"), endpoint.hasPrefix("http") else {
            throw Config.Invalid(variable: "S3_ENDPOINT", problem: "is required with S3_BUCKET (e.g. https://s3.eu-west-1.amazonaws.com)")
        }
        guard let accessKey = config.string("S3_ACCESS_KEY_ID"), let secretKey = config.string("S3_SECRET_ACCESS_KEY") else {
            throw Config.Invalid(variable: "S3_ACCESS_KEY_ID", problem: "and S3_SECRET_ACCESS_KEY are required with S3_BUCKET")
        }
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.bucket = bucket
        self.region = config.string("S3_REGION") ?? "us-east-1"
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.publicURL = config.string("S3_PUBLIC_URL").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.presignSeconds = try config.integer("S3_PRESIGN_SECONDS", default: 86_400, range: 60...604_800)
        self.now = now
    }

    var sigV4: HTTPClient.SigV4 { .init(provider: "aws:amz:\(region):s3", accessKey: accessKey, secretKey: secretKey) }

    func objectURL(_ key: String) -> String { "\(endpoint)/\(bucket)/\(key)" }

    public func put(_ bytes: [UInt8], key: String, contentType: String) throws {
        let response: HTTPClient.Response
        do {
            response = try http.send(method: "PUT", url: objectURL(key), headers: [("Content-Type", contentType)], body: bytes, sigV4: sigV4)
        } catch {
            throw DependencyUnavailable(.storage, detail: "s3 put: \(error)")
        }
        guard (200...299).contains(response.status) else {
            throw DependencyUnavailable(.storage, detail: "s3 put \(key): HTTP \(response.status)")
        }
    }

    public func read(key: String) throws -> [UInt8] {
        let response: HTTPClient.Response
        do { response = try http.send(method: "GET", url: objectURL(key), sigV4: sigV4) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 get: \(error)")
        }
        guard response.status == 200 else { throw DependencyUnavailable(.storage, detail: "s3 get \(key): HTTP \(response.status)") }
        return response.body
    }

    public func delete(key: String) throws {
        let response: HTTPClient.Response
        do { response = try http.send(method: "DELETE", url: objectURL(key), sigV4: sigV4) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 delete: \(error)")
        }
        guard (200...299).contains(response.status) || response.status == 404 else {
            throw DependencyUnavailable(.storage, detail: "s3 delete \(key): HTTP \(response.status)")
        }
    }

    public func url(for key: String) -> String {
        if let publicURL { return "\(publicURL)/\(key)" }
        return presignedGET(key)
    }

    public var urlPrefix: String? { publicURL.map { "\($0)/" } }

    /// A pre-signed GET URL (AWS Signature V4, query parameters, UNSIGNED-PAYLOAD).
    public func presignedGET(_ key: String) -> String {
        let seconds = now()
        let stamp = Self.amzDate(seconds)
        let day = String(stamp.prefix(8))
        let scope = "\(day)/\(region)/s3/aws4_request"
        let hostAndPath = endpoint.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: true)
        let host = hostAndPath.count > 1 ? String(hostAndPath[1]) : ""
        let path = "/\(Self.encode(bucket, slash: false))/\(Self.encode(key, slash: true))"
        let query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "\(accessKey)/\(scope)"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", String(presignSeconds)),
            ("X-Amz-SignedHeaders", "host"),
        ].map { "\(Self.encode($0.0, slash: false))=\(Self.encode($0.1, slash: false))" }.sorted().joined(separator: "&")
        let canonical = "GET\n\(path)\n\(query)\nhost:\(host)\n\nhost\nUNSIGNED-PAYLOAD"
        let toSign = "AWS4-HMAC-SHA256\n\(stamp)\n\(scope)\n\(Encoding.hex(Digest.sha256(canonical)))"
        var signingKey = Digest.hmacSHA256(key: Array("AWS4\(secretKey)".utf8), message: Array(day.utf8))
        for part in [region, "s3", "aws4_request"] { signingKey = Digest.hmacSHA256(key: signingKey, message: Array(part.utf8)) }
        let signature = Encoding.hex(Digest.hmacSHA256(key: signingKey, message: Array(toSign.utf8)))
        return "\(endpoint)\(path)?\(query)&X-Amz-Signature=\(signature)"
    }

    static func amzDate(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ n: Int32, _ w: Int = 2) -> String { let s = String(n); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(pad(parts.tm_year + 1900, 4))\(pad(parts.tm_mon + 1))\(pad(parts.tm_mday))T\(pad(parts.tm_hour))\(pad(parts.tm_min))\(pad(parts.tm_sec))Z"
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX (and '/' too unless `slash`).
    static func encode(_ text: String, slash: Bool) -> String {
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

/// The media storage configuration asks for, for the functions that store or delete media.
public enum MediaStorages {
    public static func configured(_ config: Config) throws -> (any MediaStorage)? {
        try S3MediaStorage(config: config)
    }
}
