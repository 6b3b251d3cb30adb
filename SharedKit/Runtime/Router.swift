import SharedKitCore

/// A handler: a plain function of the request and the context the function gives its handlers.
public typealias Handler<Context> = @Sendable (Request, Context) throws -> Response

/// Method + path patterns (`/api/v1/keys/:id`) to handlers, with a body cap per route. `Context` is what
/// each handler gets besides the request: the runtime knows nothing of it; the function that serves the
/// router says how one is made from the runtime's per-request `RequestContext` (its services beside it).
public struct Router<Context>: Sendable {
    /// The body cap of a route that names none.
    public static var defaultMaxBodyBytes: Int { 64 * 1024 }

    /// Where requests go, which knows nothing of the handlers' context (so matching is plain code, the same
    /// for every function, with no generic type to look up per request).
    private(set) var table = RouteTable()
    /// The handler of each route, in the table's order.
    private var handlers: [Handler<Context>] = []

    public init() {}

    public func get(_ pattern: String, _ handler: @escaping Handler<Context>) -> Router {
        adding("GET", pattern, Self.defaultMaxBodyBytes, handler)
    }

    public func post(_ pattern: String, maxBodyBytes: Int = Self.defaultMaxBodyBytes, _ handler: @escaping Handler<Context>) -> Router {
        adding("POST", pattern, maxBodyBytes, handler)
    }

    public func put(_ pattern: String, maxBodyBytes: Int = Self.defaultMaxBodyBytes, _ handler: @escaping Handler<Context>) -> Router {
        adding("PUT", pattern, maxBodyBytes, handler)
    }

    public func patch(_ pattern: String, maxBodyBytes: Int = Self.defaultMaxBodyBytes, _ handler: @escaping Handler<Context>) -> Router {
        adding("PATCH", pattern, maxBodyBytes, handler)
    }

    public func delete(_ pattern: String, maxBodyBytes: Int = Self.defaultMaxBodyBytes, _ handler: @escaping Handler<Context>) -> Router {
        adding("DELETE", pattern, maxBodyBytes, handler)
    }

    private func adding(_ method: String, _ pattern: String, _ maxBodyBytes: Int, _ handler: @escaping Handler<Context>) -> Router {
        var copy = self
        copy.table.add(method, pattern, maxBodyBytes)
        copy.handlers.append(handler)
        return copy
    }

    func handler(of route: RouteTable.Route) -> Handler<Context> { handlers[route.index] }
}

/// Method + path patterns and their body caps, matched against a request's method and path.
struct RouteTable: Sendable {
    struct Route: Sendable {
        enum Segment: Sendable, Equatable { case literal(String), parameter(String) }
        /// The route's place in its router (its handler's).
        let index: Int
        let method: String
        /// As declared (`/api/v1/keys/:id`): the route's name in metrics.
        let pattern: String
        let segments: [Segment]
        let maxBodyBytes: Int
    }

    enum Resolution {
        case matched(Route, parameters: [String: String])
        case notFound
        case methodNotAllowed(allow: [String])
    }

    private(set) var routes: [Route] = []

    mutating func add(_ method: String, _ pattern: String, _ maxBodyBytes: Int) {
        let segments: [Route.Segment] = pattern.split(separator: "/").map { part in
            part.hasPrefix(":") ? .parameter(String(part.dropFirst())) : .literal(String(part))
        }
        routes.append(Route(index: routes.count, method: method, pattern: pattern, segments: segments, maxBodyBytes: maxBodyBytes))
    }

    func resolve(method: String, path: String) -> Resolution {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        var allowed: [String] = []
        let lookup = method == "HEAD" ? "GET" : method
        for route in routes {
            guard let parameters = match(route, parts) else { continue }
            if route.method == lookup { return .matched(route, parameters: parameters) }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") { allowed.append("HEAD") }
        return .methodNotAllowed(allow: allowed)
    }

    private func match(_ route: Route, _ parts: [Substring]) -> [String: String]? {
        guard route.segments.count == parts.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, part) in zip(route.segments, parts) {
            switch segment {
            case .literal(let text):
                if text != part { return nil }
            case .parameter(let name):
                parameters[name] = PercentDecoding.decode(part)
            }
        }
        return parameters
    }
}
