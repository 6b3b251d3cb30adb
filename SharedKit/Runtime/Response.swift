public import SharedKitCore

/// What a handler returns: a status, headers and a body. Helpers build the usual shapes.
public struct Response: Sendable {
    public var status: HTTPStatus
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: HTTPStatus = .ok, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response. API responses are personal, so they are never cached by default.
    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok) throws -> Response {
        Response(
            status: status,
            headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: try JSON.encode(value))
    }

    /// A JSON response from a type that writes itself (the listings: no Foundation encoder on the way).
    public static func json(_ value: some JSONWritable, status: HTTPStatus = .ok) -> Response {
        json(writing: value, status: status)
    }

    /// A type both ways writable (JSONValue) takes the writer.
    public static func json(_ value: some JSONWritable & Encodable, status: HTTPStatus = .ok) -> Response {
        json(writing: value, status: status)
    }

    private static func json(writing value: some JSONWritable, status: HTTPStatus) -> Response {
        Response(
            status: status,
            headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: JSONWriter.bytes(of: value))
    }

    public static func text(_ text: String, status: HTTPStatus = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    public static func empty(_ status: HTTPStatus = .noContent) -> Response {
        Response(status: status, headers: [("Cache-Control", "no-store")])
    }

    /// The error body every client sees: `{"error": {"code", "message", "request_id"}}`.
    public static func error(_ error: HTTPError, requestID: String) -> Response {
        struct Body: Encodable {
            struct Detail: Encodable { let code: String; let message: String; let requestId: String }
            let error: Detail
        }
        let body = Body(error: .init(code: error.code, message: error.message, requestId: requestID))
        var response =
            (try? Response.json(body, status: error.status))
            ?? Response(status: error.status, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
        response.headers.append(contentsOf: error.headers)
        return response
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public mutating func setHeader(_ name: String, _ value: String) {
        headers.removeAll { $0.0.lowercased() == name.lowercased() }
        headers.append((name, value))
    }

    public mutating func setCookie(_ cookie: SetCookie) {
        headers.append(("Set-Cookie", cookie.headerValue))
    }

    /// The CGI response head (`Status:` line and headers) followed by the body.
    public func cgiBytes(includeBody: Bool = true) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256 + (includeBody ? body.count : 0))
        bytes.append(contentsOf: "Status: \(status.code) \(status.reason)\r\n".utf8)
        var hasLength = false
        for (name, value) in headers where !value.utf8.contains(0x0D) && !value.utf8.contains(0x0A) {
            if !hasLength, name.utf8.count == 14, name.lowercased() == "content-length" { hasLength = true }
            bytes.append(contentsOf: name.utf8)
            bytes.append(contentsOf: ": ".utf8)
            bytes.append(contentsOf: value.utf8)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        if !hasLength, status.code != 204 {
            bytes.append(contentsOf: "Content-Length: \(body.count)\r\n".utf8)
        }
        bytes.append(contentsOf: "\r\n".utf8)
        if includeBody { bytes.append(contentsOf: body) }
        return bytes
    }
}
