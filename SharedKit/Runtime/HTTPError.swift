public import SharedKitCore

/// An error the client is meant to see: its status, a stable snake_case code a program can branch on,
/// and a sentence a person understands. Everything that is not an `HTTPError` (or convertible to one)
/// becomes an opaque 500 whose detail goes to the log only.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public let status: HTTPStatus
    public let code: String
    public let message: String
    public var headers: [(String, String)]

    public init(_ status: HTTPStatus, code: String, message: String, headers: [(String, String)] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "HTTPError(\(status.code) \(code): \(message))" }
}

/// Errors from the kit's lower layers (database, Redis, configuration) that have a client-facing form.
public protocol HTTPErrorConvertible: Error {
    var httpError: HTTPError { get }
}

extension HTTPError: HTTPErrorConvertible {
    public var httpError: HTTPError { self }
}

/// A dependency that cannot be reached right now is a 503 with a code naming it, so a client (and nginx's
/// logs) can tell "try again later" from a bug.
extension DependencyUnavailable: HTTPErrorConvertible {
    public var httpError: HTTPError {
        let what: String
        switch dependency {
        case .database: what = "The database"
        case .redis: what = "The session and rate-limit store"
        case .storage: what = "Media storage"
        case .provider: what = "The image provider"
        case .mail: what = "The mail service"
        }
        return HTTPError(
            .serviceUnavailable, code: "\(dependency.rawValue)_unavailable",
            message: "\(what) is unavailable right now; nothing was changed. Please try again shortly.",
            headers: [("Retry-After", "5")])
    }
}
