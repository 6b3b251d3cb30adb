import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Turns one request's CGI parameters and body stream into a response: routing, body cap, the handler,
/// and error rendering. No I/O of its own, so tests drive it directly.
public struct Dispatcher: Sendable {
    public let router: Router

    public init(router: Router) {
        self.router = router
    }

    /// - Parameter readBody: reads at most the given number of bytes of the request body.
    public func respond(to params: [String: String], readBody: (Int) -> [UInt8], context: Context) -> Response {
        let started = Monotonic.now()
        var request = Request(cgi: params)
        context.beginRequest(request)
        var route = "unmatched"
        var response = respond(to: &request, route: &route, readBody: readBody, context: context)
        for (name, value) in context.responseHeaders where response.header(name) == nil {
            response.headers.append((name, value))
        }
        let millis = Double(Monotonic.now() - started) / 1_000_000
        context.metrics.request(route: route, method: request.method, status: response.status.code, seconds: millis / 1000)
        context.logger.info(
            "request",
            metadata: [
                "http.method": .string(request.method),
                "http.path": .string(request.path),
                "http.status": .stringConvertible(response.status.code),
                "duration_ms": .string(String(format3: millis)),
            ])
        return response
    }

    private func respond(to request: inout Request, route name: inout String, readBody: (Int) -> [UInt8], context: Context) -> Response {
        switch router.resolve(method: request.method, path: request.path) {
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
            if let refusal = crossOriginRefusal(request, context) { return .error(refusal, requestID: request.id) }
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
            var response = invoke(route.handler, request, context)
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

    private func invoke(_ handler: Handler, _ request: Request, _ context: Context) -> Response {
        do {
            return try handler(request, context)
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
    private func crossOriginRefusal(_ request: Request, _ context: Context) -> HTTPError? {
        guard !["GET", "HEAD", "OPTIONS"].contains(request.method) else { return nil }
        let foreignOrigin = request.header("origin").map { $0 != context.config.publicOrigin } ?? false
        let crossSite = request.header("sec-fetch-site") == "cross-site"
        guard foreignOrigin || crossSite else { return nil }
        return HTTPError(.forbidden, code: "csrf_failed", message: "Requests from other sites are not accepted.")
    }

    private func tooLarge(_ cap: Int) -> HTTPError {
        HTTPError(
            .payloadTooLarge, code: "body_too_large", message: "The request body is larger than the \(cap)-byte limit for this endpoint.")
    }
}

/// Monotonic nanoseconds, for durations.
public enum Monotonic {
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
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
