public import SharedKitCore

/// One HTTP request as nginx hands it over FastCGI (or a web server over CGI): the parameters of the
/// CGI environment, and the body read up to the route's cap.
public struct Request: Sendable {
    public let method: String
    /// The path as sent, without the query; route parameters are percent-decoded separately.
    public let path: String
    public let query: [String: [String]]
    /// Header names are lower-case.
    public let headers: [String: String]
    public let cookies: [String: String]
    /// The client address as nginx saw it (after its `real_ip` rules), never a raw X-Forwarded-For.
    public let clientAddress: String
    /// nginx's `$request_id` when present, otherwise one made here.
    public let id: String
    public internal(set) var body: [UInt8]
    /// Route parameters, e.g. `id` for `/api/v1/keys/:id`.
    public internal(set) var parameters: [String: String] = [:]

    public init(
        method: String, path: String, query: [String: [String]] = [:], headers: [String: String] = [:],
        clientAddress: String = "127.0.0.1", id: String = RequestID.make(), body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        var lowered: [String: String] = [:]
        for (name, value) in headers { lowered[name.lowercased()] = value }
        self.headers = lowered
        self.cookies = Cookies.parse(lowered["cookie"])
        self.clientAddress = clientAddress
        self.id = id
        self.body = body
    }

    /// Builds a request from CGI/FastCGI parameters (`REQUEST_METHOD`, `REQUEST_URI`, `HTTP_*` …).
    public init(cgi params: [String: String], body: [UInt8] = []) {
        var headers: [String: String] = [:]
        for (name, value) in params where name.utf8.starts(with: "HTTP_".utf8) {
            headers[Self.headerName(cgi: name)] = value
        }
        if let type = params["CONTENT_TYPE"], !type.isEmpty { headers["content-type"] = type }
        if let length = params["CONTENT_LENGTH"], !length.isEmpty { headers["content-length"] = length }

        let uri = params["REQUEST_URI"] ?? ((params["SCRIPT_NAME"] ?? "") + (params["PATH_INFO"] ?? ""))
        let path: Substring
        var queryString = Substring(params["QUERY_STRING"] ?? "")
        if let mark = uri.firstIndex(of: "?") {
            path = uri[..<mark]
            if queryString.isEmpty { queryString = uri[uri.index(after: mark)...] }
        } else {
            path = Substring(uri)
        }
        let id = params["REQUEST_ID"].flatMap { RequestID.isWellFormed($0) ? $0 : nil } ?? RequestID.make()
        self.init(
            method: (params["REQUEST_METHOD"] ?? "GET").uppercased(),
            path: path.isEmpty ? "/" : String(path),
            query: PercentDecoding.query(queryString),
            headers: headers,
            clientAddress: params["REMOTE_ADDR"] ?? "",
            id: id,
            body: body)
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }

    /// `HTTP_X_CSRF_TOKEN` → `x-csrf-token`, byte by byte (CGI names are ASCII).
    static func headerName(cgi name: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(name.utf8.count - 5)
        for byte in name.utf8.dropFirst(5) {
            switch byte {
            case UInt8(ascii: "_"): bytes.append(UInt8(ascii: "-"))
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): bytes.append(byte + 0x20)
            default: bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first value of a query parameter.
    public func query(_ name: String) -> String? { query[name]?.first }

    /// A route parameter; routes declare them, so a missing one is a programming error reported as 404.
    public func parameter(_ name: String) throws -> String {
        guard let value = parameters[name] else {
            throw HTTPError(.notFound, code: "not_found", message: "No such resource.")
        }
        return value
    }

    /// The media type of the body without parameters, lower-cased (`application/json`).
    public var mediaType: String? {
        guard let type = headers["content-type"] else { return nil }
        return type.split(separator: ";", maxSplits: 1).first.map { $0.trimmingWhitespace().lowercased() }
    }

    /// A path parameter that names a row (`/api/v1/images/:id`): nil when it is not a UUID, which to a
    /// lookup means "not found".
    public func id<Entity>(_ name: String) throws -> ID<Entity>? { ID(try parameter(name)) }

    /// Decodes a JSON body: 415 for another content type, 400 `invalid_json` for malformed JSON, and a 400
    /// naming the field for a missing or mistyped one.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard mediaType == "application/json" else {
            throw HTTPError(
                .unsupportedMediaType, code: "unsupported_media_type",
                message: "Send the request body as JSON with 'Content-Type: application/json'.")
        }
        return try JSON.decodeBody(type, from: body)
    }
}

/// Request ids: nginx's `$request_id` is 32 hex characters; the runtime makes one of the same shape when
/// a request arrives without it (CGI, tests).
public enum RequestID {
    public static func make() -> String { Random.hex(byteCount: 16) }

    static func isWellFormed(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x2D
            }
    }
}
