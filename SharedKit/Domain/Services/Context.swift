public import Logging
public import SharedKitCore
public import SharedKitRuntime
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A function's process-wide services: configuration, this process's PostgreSQL and Redis connections
/// (opened lazily, reopened when found broken), the rules configuration sets (session lifetimes, quota,
/// rate budgets), media storage and counters. Each function builds them once at start
/// (`Services.start`) and hands them to every handler in its `Context`.
///
/// Not `Sendable`: a function process serves one request at a time from a single thread.
public final class Services {
    public let config: Config
    public let functionName: String
    /// The process's logger (a request's own, carrying its id, is `Context.logger`).
    public let logger: Logger
    public let db: PostgresConnection
    public let redis: RedisConnection
    /// The time source for rules with deadlines (seconds since the epoch); tests substitute a fixed clock.
    public var now: @Sendable () -> Int64 = { WallClock.nowSeconds() }
    public let sessionLifetimes: SessionStore.Lifetimes
    public let quota: QuotaPolicy
    public let rateBudgets: RateLimiter.Budgets
    /// Remote media storage (S3), made at start by functions that link the HTTP part of the kit.
    public let remoteMedia: (any MediaStorage)?
    /// This process's counters (requests, refunds, webhook deliveries), in the host's metrics directory
    /// (METRICS_DIR, default `<RUN_DIR>/metrics`), opened at the first count.
    public let metrics: ProcessMetrics

    /// Fails when a configured number is malformed, so the process stops at start naming it.
    public init(config: Config, functionName: String, logger: Logger, media: (any MediaStorage)? = nil) throws {
        self.config = config
        self.functionName = functionName
        self.logger = logger
        self.db = PostgresConnection(
            url: config.databaseURL, timeoutMs: config.dependencyTimeoutMs, prepareStatements: config.preparedStatements)
        self.redis = RedisConnection(url: config.redisURL, timeoutMs: config.dependencyTimeoutMs)
        self.sessionLifetimes = try SessionStore.Lifetimes(config: config)
        self.quota = try QuotaPolicy(config: config)
        self.rateBudgets = try RateLimiter.Budgets(config: config)
        self.remoteMedia = media
        self.metrics = ProcessMetrics(directory: config.metricsDir, process: functionName)
    }

    /// Logging, libsodium, configuration and connections: everything a function needs before its first
    /// request. A configuration problem ends the process here with one line naming the variable.
    /// - Parameter media: makes the remote media storage from the configuration (nil when none is set).
    public static func start(function name: String, media: ((Config) throws -> (any MediaStorage)?)? = nil) -> Services {
        var logger = FunctionRuntime.logger(name: name)
        Random.initialise()
        do {
            let config = try Config.fromProcess()
            logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
            return try Services(config: config, functionName: name, logger: logger, media: try media?(config))
        } catch {
            FunctionRuntime.fail("\(name): configuration error: \(error)")
        }
    }

    /// Serves `router` with these services: the runtime's accept loop, each handler given a `Context`.
    public func serve(_ router: Router<Context>) -> Never {
        FunctionRuntime(name: functionName, publicOrigin: config.publicOrigin, logger: logger, metrics: metrics)
            .serve(router) { request in Context(request: request, services: self) }
    }

    /// A context outside any HTTP request (cron runs, the CLI, tests): the process's logger, a fresh id.
    public func standaloneContext() -> Context {
        Context(request: RequestContext(requestID: RequestID.make(), logger: logger), services: self)
    }
}

/// What every handler gets besides the request: the runtime's state for this request (its logger, the
/// headers every response carries, the work after the response) and the function's services.
public struct Context {
    /// This request's: made by the runtime for it alone.
    public let request: RequestContext
    /// The process's: the same for every request.
    public let services: Services

    public init(request: RequestContext, services: Services) {
        self.request = request
        self.services = services
    }

    public var logger: Logger { request.logger }
    public var config: Config { services.config }
    public var functionName: String { services.functionName }
    public var db: PostgresConnection { services.db }
    public var redis: RedisConnection { services.redis }
    public var now: @Sendable () -> Int64 { services.now }
    public var sessionLifetimes: SessionStore.Lifetimes { services.sessionLifetimes }
    public var quota: QuotaPolicy { services.quota }
    public var rateBudgets: RateLimiter.Budgets { services.rateBudgets }
    public var remoteMedia: (any MediaStorage)? { services.remoteMedia }
    public var metrics: ProcessMetrics { services.metrics }

    /// Work to run once the response has been sent.
    public func afterResponse(_ work: @escaping () throws -> Void) { request.afterResponse.append(work) }

    /// The clock's time as a date, for rules that compare with stored dates (premium until, periods):
    /// one source, `now`, for every time the code itself reads.
    public func date() -> Date { Date(timeIntervalSince1970: TimeInterval(now())) }
}
