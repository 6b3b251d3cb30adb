public import Logging

/// What the runtime keeps for one request, whatever the function: its id, a logger carrying it, the
/// headers every response to it carries, and the work to run once it has been answered. Made fresh by the
/// dispatcher for each request; the function's own services reach handlers beside it (see `Router`).
///
/// Not `Sendable`: a function process serves one request at a time from a single thread (the FastCGI
/// accept loop), and the compiler keeps it so.
public final class RequestContext {
    public let requestID: String
    public let logger: Logger
    /// Headers every response to this request carries (rate-limit state), errors included.
    public var responseHeaders: [(String, String)] = []
    /// Work to run once the response has been sent (FastCGI lets the process finish the request first),
    /// such as copying a provider's output after acknowledging its webhook.
    public var afterResponse: [() throws -> Void] = []

    public init(requestID: String, logger: Logger) {
        self.requestID = requestID
        self.logger = logger
    }

    /// Runs the work queued for after the response; a failure is logged, never raised.
    func runAfterResponse() {
        // Work may queue more work (a provider job that ends queues its webhook): run until none is left.
        while !afterResponse.isEmpty {
            let work = afterResponse
            afterResponse = []
            for task in work {
                do { try task() } catch {
                    logger.error("work after the response failed", metadata: ["error": .string("\(error)")])
                }
            }
        }
    }
}
