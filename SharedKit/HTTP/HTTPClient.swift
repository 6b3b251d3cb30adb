import CCurl
import SharedKit
import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// A blocking HTTP client over libcurl for the providers (Replicate, Razorpay), downloads and S3.
/// Every transfer has a connect and a total timeout and a response size cap, so a slow or hostile peer
/// costs a bounded error, never a hang.
public struct HTTPClient: Sendable {
    public struct Response: Sendable {
        public let status: Int
        public let headers: [(String, String)]
        public let body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.last { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// True when no byte of the request reached the peer (no connection, or the TLS handshake
        /// failed): sending it again cannot repeat its effect. False when it may have been received.
        public var notSent = false
    }

    public var connectTimeoutMs: Int
    public var timeoutMs: Int
    public var maxResponseBytes: Int
    /// `host:port:address` entries: connect to these addresses for these names, without resolving them
    /// (an address checked before is the one connected to).
    public var resolve: [String] = []
    /// Never through a proxy from the environment (`https_proxy`…).
    public var noProxy = false
    /// The schemes allowed (curl's CURLOPT_PROTOCOLS_STR).
    public var protocols = "http,https"
    /// Which addresses a connection may be opened to, checked on the socket itself whatever resolved the
    /// name (curl's CURLOPT_OPENSOCKETFUNCTION): for URLs a user chose (completion webhooks).
    public var addressGuard: AddressGuard = .any

    public enum AddressGuard: Int32, Sendable {
        case any = 0
        /// Public unicast addresses only (`AddressPolicy.isPublic`).
        case publicOnly = 1
        /// Public ones and loopback (the test stack's receivers).
        case publicOrLoopback = 2
    }

    public init(connectTimeoutMs: Int = 3000, timeoutMs: Int = 15000, maxResponseBytes: Int = 50 * 1024 * 1024) {
        self.connectTimeoutMs = connectTimeoutMs
        self.timeoutMs = timeoutMs
        self.maxResponseBytes = maxResponseBytes
        _ = Self.globalInit
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public func send(
        method: String, url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        basicAuth: (user: String, password: String)? = nil
    ) throws -> Response {
        guard let handle = curl_easy_init() else { throw Failure(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let sink = TransferSink(limit: maxResponseBytes)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()

        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in headers { list = curl_slist_append(list, "\(name): \(value)") }
        if body != nil, !headers.contains(where: { $0.0.lowercased() == "expect" }) { list = curl_slist_append(list, "Expect:") }
        defer { curl_slist_free_all(list) }

        atl_curl_setopt_string(handle, CURLOPT_URL, url)
        atl_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        atl_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        atl_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMs)
        atl_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
        atl_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, protocols)
        atl_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
        var resolveList: UnsafeMutablePointer<curl_slist>?
        for entry in resolve { resolveList = curl_slist_append(resolveList, entry) }
        defer { curl_slist_free_all(resolveList) }
        if resolveList != nil { atl_curl_setopt_slist(handle, CURLOPT_RESOLVE, resolveList) }
        if noProxy { atl_curl_setopt_string(handle, CURLOPT_PROXY, "") }
        // Only transfers to addresses a user chose pay for the guard (S3, providers and downloads do not).
        var guardMode: UnsafeMutablePointer<Int32>?
        defer { guardMode?.deallocate() }
        if addressGuard != .any {
            let mode = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
            mode.initialize(to: addressGuard.rawValue)
            guardMode = mode
            atl_curl_setopt_opensocket_function(handle) { mode, _, address in
                guard let mode, let address else { return -1 }
                var bytes = [UInt8](repeating: 0, count: 16)
                let count = Int(atl_curl_sockaddr_ip(address, &bytes))
                guard count == 4 || count == 16,
                    AddressPolicy.allows(
                        Array(bytes.prefix(count)), loopback: mode.load(as: Int32.self) == AddressGuard.publicOrLoopback.rawValue)
                else { return -1 }  // CURL_SOCKET_BAD: curl fails the transfer without connecting
                return socket(address.pointee.family, address.pointee.socktype, address.pointee.protocol)
            }
            atl_curl_setopt_pointer(handle, CURLOPT_OPENSOCKETDATA, mode)
        }
        atl_curl_setopt_write_function(handle) { data, size, count, user in
            let sink = Unmanaged<TransferSink>.fromOpaque(user!).takeUnretainedValue()
            return sink.append(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        atl_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)
        atl_curl_setopt_header_function(handle) { data, size, count, user in
            let sink = Unmanaged<TransferSink>.fromOpaque(user!).takeUnretainedValue()
            sink.header(UnsafeRawBufferPointer(start: data, count: size * count))
            return size * count
        }
        atl_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, sinkPointer)
        if let basicAuth {
            atl_curl_setopt_string(handle, CURLOPT_USERNAME, basicAuth.user)
            atl_curl_setopt_string(handle, CURLOPT_PASSWORD, basicAuth.password)
        }
        let code: CURLcode
        if let body {
            code = body.withUnsafeBytes { raw -> CURLcode in
                atl_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, raw.count)
                atl_curl_setopt_pointer(
                    handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                return curl_easy_perform(handle)
            }
        } else {
            code = curl_easy_perform(handle)
        }
        if sink.overflowed { throw Failure(description: "response larger than \(maxResponseBytes) bytes") }
        guard code == CURLE_OK else {
            var requestBytes = 0
            atl_curl_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &requestBytes)
            throw Failure(
                description: "\(method) \(Self.redacted(url)): \(String(cString: curl_easy_strerror(code)))",
                notSent: requestBytes == 0)
        }
        var status = 0
        atl_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, headers: sink.headers, body: sink.body)
    }

    /// The URL without its query (which may carry signatures) for error messages and logs.
    static func redacted(_ url: String) -> String {
        url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
    }
}

/// Collects a transfer's headers and body; owned by the `send` call for its duration.
final class TransferSink {
    let limit: Int
    var body: [UInt8] = []
    var headers: [(String, String)] = []
    var overflowed = false

    init(limit: Int) {
        self.limit = limit
    }

    func append(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if body.count + bytes.count > limit {
            overflowed = true
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    func header(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self)
        if line.hasPrefix("HTTP/") { headers = [] }  // a new response (redirect, 100-continue)
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingWhitespace().description
        headers.append((name, value))
    }
}
