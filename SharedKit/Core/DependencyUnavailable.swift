/// A dependency that cannot be reached right now (the database, Redis, storage, a provider, mail). The
/// stores and clients throw it; the runtime renders it as a 503 naming the dependency.
public struct DependencyUnavailable: Error, CustomStringConvertible, Sendable {
    public enum Dependency: String, Sendable {
        case database
        case redis
        case storage
        case provider
        case mail
    }

    public let dependency: Dependency
    /// Log-only detail (never sent to the client).
    public let detail: String

    public init(_ dependency: Dependency, detail: String) {
        self.dependency = dependency
        self.detail = detail
    }

    public var description: String { "\(dependency.rawValue) unavailable: \(detail)" }
}
