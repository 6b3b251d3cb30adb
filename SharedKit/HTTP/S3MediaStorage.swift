public import SharedKit
public import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Media in any S3-compatible bucket, path-style (`endpoint/bucket/key`, the default: every S3-compatible
/// server takes it) or virtual-hosted-style (`bucket.endpoint-host/key`, `S3_ADDRESSING=virtual`, what AWS
/// recommends). Requests are signed with AWS Signature V4 (`S3Signature`); the URLs browsers load are the
/// bucket's public URL or pre-signed GET URLs (Signature V4 query signing), as configured.
public struct S3MediaStorage: MediaStorage {
    /// `scheme://host[:port]`, no path.
    public let endpoint: String
    public let bucket: String
    public let region: String
    public let virtualHosted: Bool
    let signature: S3Signature
    /// Where browsers load objects from when not pre-signing (a public bucket, a CDN).
    public let publicURL: String?
    public let presignSeconds: Int
    let http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: 60_000, maxResponseBytes: 200 * 1024 * 1024)
    let now: @Sendable () -> Int64

    /// nil when no `S3_BUCKET` is configured (media then live on the filesystem).
    public init?(config: Config, now: @escaping @Sendable () -> Int64 = { WallClock.nowSeconds() }) throws {
        guard let bucket = config.string("S3_BUCKET") else { return nil }
        guard let given = config.string("S3_ENDPOINT"), given.hasPrefix("http://") || given.hasPrefix("https://") else {
            throw Config.Invalid(variable: "S3_ENDPOINT", problem: "is required with S3_BUCKET (e.g. https://s3.eu-west-1.amazonaws.com)")
        }
        let endpoint = given.hasSuffix("/") ? String(given.dropLast()) : given
        guard endpoint.split(separator: "/", omittingEmptySubsequences: false).count == 3, !endpoint.contains("?") else {
            throw Config.Invalid(variable: "S3_ENDPOINT", problem: "must be scheme://host[:port] with no path (the bucket is S3_BUCKET)")
        }
        guard let accessKey = config.string("S3_ACCESS_KEY_ID"), let secretKey = config.string("S3_SECRET_ACCESS_KEY") else {
            throw Config.Invalid(variable: "S3_ACCESS_KEY_ID", problem: "and S3_SECRET_ACCESS_KEY are required with S3_BUCKET")
        }
        switch config.string("S3_ADDRESSING") ?? "path" {
        case "path": virtualHosted = false
        case "virtual": virtualHosted = true
        default: throw Config.Invalid(variable: "S3_ADDRESSING", problem: "must be path or virtual")
        }
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = config.string("S3_REGION") ?? "us-east-1"
        self.signature = S3Signature(accessKey: accessKey, secretKey: secretKey, region: region)
        self.publicURL = config.string("S3_PUBLIC_URL").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.presignSeconds = try config.integer("S3_PRESIGN_SECONDS", default: 86_400, range: 60...604_800)
        self.now = now
    }

    /// Where an object (or, with no key, the bucket) is: the URL, the Host header and the encoded path.
    func location(_ key: String?) -> (url: String, host: String, path: String) {
        let scheme = endpoint.hasPrefix("https://") ? "https://" : "http://"
        let authority = String(endpoint.dropFirst(scheme.count))
        let encodedKey = key.map { S3Signature.encode($0, slash: true) } ?? ""
        let host = virtualHosted ? "\(bucket).\(authority)" : authority
        let path = virtualHosted ? "/\(encodedKey)" : "/\(S3Signature.encode(bucket, slash: false))" + (key == nil ? "" : "/\(encodedKey)")
        return ("\(scheme)\(host)\(path)", host, path)
    }

    /// One signed request: every header S3 is sent is signed, the payload's SHA-256 included.
    func send(
        _ method: String, key: String?, body: [UInt8]? = nil, contentType: String? = nil, range: String? = nil
    ) throws
        -> HTTPClient.Response
    {
        let (url, host, path) = location(key)
        var headers = [("Host", host)]
        if let contentType { headers.append(("Content-Type", contentType)) }
        if let range { headers.append(("Range", range)) }
        let payloadHash = body.map { Encoding.hex(Digest.sha256($0)) } ?? S3Signature.emptyPayloadHash
        headers += signature.sign(
            method: method, path: path, headers: headers, payloadHash: payloadHash, amzDate: S3Signature.amzDate(now()))
        return try http.send(method: method, url: url, headers: headers, body: body)
    }

    public func put(_ bytes: [UInt8], key: String, contentType: String) throws {
        let response: HTTPClient.Response
        do { response = try send("PUT", key: key, body: bytes, contentType: contentType) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 put: \(error)")
        }
        guard (200...299).contains(response.status) else {
            throw DependencyUnavailable(.storage, detail: "s3 put \(key): HTTP \(response.status)\(Self.errorCode(response))")
        }
    }

    public func read(key: String) throws -> [UInt8] {
        let response: HTTPClient.Response
        do { response = try send("GET", key: key) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 get: \(error)")
        }
        guard response.status == 200 else {
            throw DependencyUnavailable(.storage, detail: "s3 get \(key): HTTP \(response.status)\(Self.errorCode(response))")
        }
        return response.body
    }

    /// S3 serves the range itself (GetObject with `Range`: 206 and `Content-Range`, 416 past the end).
    public func read(key: String, range: String) throws -> RangedRead? {
        let response: HTTPClient.Response
        do { response = try send("GET", key: key, range: range) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 get: \(error)")
        }
        switch response.status {
        case 206: return RangedRead(status: 206, bytes: response.body, contentRange: response.header("Content-Range"))
        case 200: return RangedRead(status: 200, bytes: response.body, contentRange: nil)
        case 416: return RangedRead(status: 416, bytes: [], contentRange: response.header("Content-Range"))
        default:
            throw DependencyUnavailable(.storage, detail: "s3 get \(key): HTTP \(response.status)\(Self.errorCode(response))")
        }
    }

    public func delete(key: String) throws {
        let response: HTTPClient.Response
        do { response = try send("DELETE", key: key) } catch {
            throw DependencyUnavailable(.storage, detail: "s3 delete: \(error)")
        }
        guard (200...299).contains(response.status) || response.status == 404 else {
            throw DependencyUnavailable(.storage, detail: "s3 delete \(key): HTTP \(response.status)\(Self.errorCode(response))")
        }
    }

    /// Creates the bucket (for tests and first setups; production buckets are made by the operator).
    func createBucket() throws -> Int {
        try send("PUT", key: nil, body: []).status
    }

    /// S3's error code (`SignatureDoesNotMatch` …) from its XML error document, for logs.
    static func errorCode(_ response: HTTPClient.Response) -> String {
        let text = String(decoding: response.body.prefix(2048), as: UTF8.self)
        guard let start = text.firstRange(of: "<Code>"), let end = text[start.upperBound...].firstRange(of: "</Code>") else { return "" }
        return " " + text[start.upperBound..<end.lowerBound]
    }

    public func url(for key: String) -> String {
        if let publicURL { return "\(publicURL)/\(S3Signature.encode(key, slash: true))" }
        return presignedGET(key)
    }

    public var urlPrefix: String? { publicURL.map { "\($0)/" } }

    /// Where browsers load media from (for the pages' Content-Security-Policy): the public URL's or the
    /// bucket's origin.
    public var browserOrigin: String {
        let url = publicURL ?? location(nil).url
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        return parts.count >= 3 ? "\(parts[0])//\(parts[2])" : url
    }

    /// A pre-signed GET URL (AWS Signature V4, query parameters, UNSIGNED-PAYLOAD).
    public func presignedGET(_ key: String) -> String {
        let (url, host, path) = location(key)
        return url + "?"
            + signature.presignedQuery(method: "GET", host: host, path: path, amzDate: S3Signature.amzDate(now()), expires: presignSeconds)
    }
}

/// The media storage configuration asks for, for the functions that store or delete media.
public enum MediaStorages {
    public static func configured(_ config: Config) throws -> (any MediaStorage)? {
        try S3MediaStorage(config: config)
    }
}
