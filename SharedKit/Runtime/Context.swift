public import Logging

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// What every handler gets besides the request: configuration, a logger carrying the request id, and
/// this process's PostgreSQL and Redis connections (opened lazily, reopened when found broken).
///
/// Not `Sendable`: a function process serves one request at a time from a single thread (the FastCGI
/// accept loop), and the compiler keeps it so (a context cannot be handed to another thread).
public final class Context {
    public let config: Config
    public let functionName: String
    public private(set) var logger: Logger
    public let db: PostgresConnection
    public let redis: RedisConnection
    /// The time source for rules with deadlines (seconds since the epoch); tests substitute a fixed clock.
    public var now: @Sendable () -> Int64 = { WallClock.nowSeconds() }
    /// Work to run once the response has been sent (FastCGI lets the process finish the request first),
    /// such as copying a provider's output after acknowledging its webhook.
    public var afterResponse: [() throws -> Void] = []
    /// Headers every response to the current request carries (rate-limit state), errors included.
    public var responseHeaders: [(String, String)] = []
    public let sessionLifetimes: SessionStore.Lifetimes
    public let quota: QuotaPolicy
    public let rateBudgets: RateLimiter.Budgets
    /// Remote media storage (S3), set at start by functions that link the HTTP part of the kit.
    public internal(set) var remoteMedia: (any MediaStorage)?
    /// This process's counters (requests, refunds, webhook deliveries), in the host's metrics directory
    /// (METRICS_DIR, default `<RUN_DIR>/metrics`), opened at the first count.
    public private(set) lazy var metrics = ProcessMetrics(
        directory: config.metricsDir, process: functionName)
    private let baseLogger: Logger

    /// Fails when a configured number is malformed, so the process stops at start naming it.
    public init(config: Config, functionName: String, logger: Logger) throws {
        self.config = config
        self.functionName = functionName
        self.baseLogger = logger
        self.logger = logger
        self.db = PostgresConnection(
            url: config.databaseURL, timeoutMs: config.dependencyTimeoutMs, prepareStatements: config.preparedStatements)
        self.redis = RedisConnection(url: config.redisURL, timeoutMs: config.dependencyTimeoutMs)
        self.sessionLifetimes = try SessionStore.Lifetimes(config: config)
        self.quota = try QuotaPolicy(config: config)
        self.rateBudgets = try RateLimiter.Budgets(config: config)
    }

    /// Called by the dispatcher as a request starts: the logger carries its id from here on.
    func beginRequest(_ request: Request) {
        var logger = baseLogger
        logger[metadataKey: "request.id"] = .string(request.id)
        self.logger = logger
        responseHeaders = []
        afterResponse = []
    }
}

extension Context {
    /// The clock's time as a date, for rules that compare with stored dates (premium until, periods):
    /// one source, `now`, for every time the code itself reads.
    public func date() -> Date { Date(timeIntervalSince1970: TimeInterval(now())) }

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

/// Wall-clock time without Foundation.
public enum WallClock {
    public static func nowSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }
}
