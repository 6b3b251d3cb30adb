public import Logging
public import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// Turns one request's CGI parameters and body stream into a response: routing, body cap, the handler,
/// and error rendering. No I/O of its own, so tests drive it directly.
public struct Dispatcher<Context> {
    public let router: Router<Context>
    /// The site's own origin (`https://atelier.example`): a state-changing request from any other is refused.
    let publicOrigin: String
    let logger: Logger
    let metrics: ProcessMetrics?
    /// The handlers' context for one request, made from the runtime's.
    let makeContext: (RequestContext) -> Context

    public init(
        router: Router<Context>, publicOrigin: String, logger: Logger, metrics: ProcessMetrics?,
        context: @escaping (RequestContext) -> Context
    ) {
        self.router = router
        self.publicOrigin = publicOrigin
        self.logger = logger
        self.metrics = metrics
        self.makeContext = context
    }

    /// - Parameter readBody: reads at most the given number of bytes of the request body.
    /// - Returns: the response, and the request's context (its work after the response is still to run).
    public func respond(to params: [String: String], readBody: (Int) -> [UInt8]) -> (response: Response, context: RequestContext) {
        let started = Monotonic.now()
        var request = Request(cgi: params)
        var logger = self.logger
        logger[metadataKey: "request.id"] = .string(request.id)
        let context = RequestContext(requestID: request.id, logger: logger)
        var route = "unmatched"
        var response = respond(to: &request, route: &route, readBody: readBody, context: context)
        for (name, value) in context.responseHeaders where response.header(name) == nil {
            response.headers.append((name, value))
        }
        let millis = Double(Monotonic.now() - started) / 1_000_000
        metrics?.request(route: route, method: request.method, status: response.status.code, seconds: millis / 1000)
        logger.info(
            "request",
            metadata: [
                "http.method": .string(request.method),
                "http.path": .string(request.path),
                "http.status": .stringConvertible(response.status.code),
                "duration_ms": .string(String(format3: millis)),
            ])
        return (response, context)
    }

    private func respond(
        to request: inout Request, route name: inout String, readBody: (Int) -> [UInt8], context: RequestContext
    ) -> Response {
        switch router.table.resolve(method: request.method, path: request.path) {
        case .notFound:
            return .error(HTTPError(.notFound, code: "not_found", message: "There is nothing at \(request.path)."), requestID: request.id)
        case .methodNotAllowed(let allow):
            let error = HTTPError(
                .methodNotAllowed, code: "method_not_allowed",
                message: "\(request.method) is not supported here; use \(allow.joined(separator: ", ")).",
                headers: [("Allow", allow.joined(separator: ", "))])
            return .error(error, requestID: request.id)
        case .matched(let route, let parameters):
            name = route.pattern
            request.parameters = parameters
            if let refusal = crossOriginRefusal(request) { return .error(refusal, requestID: request.id) }
            let declared = request.header("content-length").flatMap { Int($0) } ?? 0
            if declared > route.maxBodyBytes {
                return .error(tooLarge(route.maxBodyBytes), requestID: request.id)
            }
            if declared > 0 {
                // One byte past the cap tells a lying Content-Length from an honest one.
                let body = readBody(min(declared, route.maxBodyBytes + 1))
                if body.count > route.maxBodyBytes { return .error(tooLarge(route.maxBodyBytes), requestID: request.id) }
                request.body = body
            }
            var response = invoke(router.handler(of: route), request, context)
            if request.method == "HEAD" {
                // The GET's headers, its length included, without its body (RFC 9110 §9.3.2).
                if response.header("Content-Length") == nil, response.status.code != 204 {
                    response.headers.append(("Content-Length", String(response.body.count)))
                }
                response.body = []
            }
            return response
        }
    }

    private func invoke(_ handler: Handler<Context>, _ request: Request, _ context: RequestContext) -> Response {
        do {
            return try handler(request, makeContext(context))
        } catch let error as any HTTPErrorConvertible {
            let httpError = error.httpError
            if httpError.status.code >= 500 {
                context.logger.error("dependency failure", metadata: ["error": .string(String(describing: error))])
            }
            return .error(httpError, requestID: request.id)
        } catch {
            context.logger.error("unhandled error", metadata: ["error": .string(String(reflecting: error))])
            let hidden = HTTPError(
                .internalServerError, code: "internal_error",
                message: "Something went wrong on our side. If it keeps happening, quote request id \(request.id).")
            return .error(hidden, requestID: request.id)
        }
    }

    /// A browser sends `Origin` with every state-changing request; one from another site is refused before
    /// any handler runs (CSRF defence in depth, login included). Programs and webhooks send no Origin.
    private func crossOriginRefusal(_ request: Request) -> HTTPError? {
        guard !["GET", "HEAD", "OPTIONS"].contains(request.method) else { return nil }
        let foreignOrigin = request.header("origin").map { $0 != publicOrigin } ?? false
        let crossSite = request.header("sec-fetch-site") == "cross-site"
        guard foreignOrigin || crossSite else { return nil }
        return HTTPError(.forbidden, code: "csrf_failed", message: "Requests from other sites are not accepted.")
    }

    private func tooLarge(_ cap: Int) -> HTTPError {
        HTTPError(
            .payloadTooLarge, code: "body_too_large", message: "The request body is larger than the \(cap)-byte limit for this endpoint.")
    }
}

extension String {
    /// A number with three decimals, without Foundation's formatters.
    init(format3 value: Double) {
        let scaled = Int((value * 1000).rounded())
        let fraction = String(scaled % 1000)
        self = "\(scaled / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
