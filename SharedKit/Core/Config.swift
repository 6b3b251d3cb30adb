#if canImport(Glibc)
import Glibc
#endif

/// Configuration from environment variables only. Functions read typed values through the accessors
/// below; a missing or malformed required value stops the process at start with one line naming it.
public struct Config: Sendable {
    public struct Invalid: Error, CustomStringConvertible {
        public let variable: String
        public let problem: String
        public var description: String { "\(variable) \(problem)" }

        public init(variable: String, problem: String) {
            self.variable = variable
            self.problem = problem
        }
    }

    public let environment: [String: String]

    public let databaseURL: String
    public let redisURL: String
    public let publicBaseURL: String
    public let appSecret: String
    public let runDir: String
    /// Where this host's processes keep their counters (METRICS_DIR, default `<RUN_DIR>/metrics`).
    public let metricsDir: String
    /// Client-side bound on one PostgreSQL or Redis round trip, so a hung dependency costs a 503, not a hang.
    public let dependencyTimeoutMs: Int
    public let logLevel: String
    /// Keep statements prepared per connection (`DATABASE_PREPARED_STATEMENTS`, on by default); off behind
    /// a pooler in transaction mode that does not carry prepared statements between server connections.
    public let preparedStatements: Bool

    /// `DATABASE_PREPARED_STATEMENTS`: on (the default) or off; for the functions and the CLI alike.
    public static func preparedStatements(_ environment: [String: String]) throws -> Bool {
        switch environment["DATABASE_PREPARED_STATEMENTS"] ?? "" {
        case "", "on", "true", "1": return true
        case "off", "false", "0": return false
        default: throw Invalid(variable: "DATABASE_PREPARED_STATEMENTS", problem: "must be on or off")
        }
    }

    public init(environment: [String: String]) throws {
        self.environment = environment
        databaseURL = try Self.required(environment, "DATABASE_URL", "must be a postgres:// or postgresql:// URL") {
            $0.hasPrefix("postgres://") || $0.hasPrefix("postgresql://")
        }
        redisURL = try Self.required(environment, "REDIS_URL", "must be a redis://, unix:// or redis-sentinel://host:port,…/master URL") {
            $0.hasPrefix("redis://") || $0.hasPrefix("unix://") || $0.hasPrefix("redis-sentinel://")
        }
        let base = try Self.required(environment, "PUBLIC_BASE_URL", "must be an http:// or https:// URL") {
            ($0.hasPrefix("http://") || $0.hasPrefix("https://")) && !$0.contains(" ")
        }
        publicBaseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        appSecret = try Self.required(environment, "APP_SECRET", "must be at least 32 characters") { $0.utf8.count >= 32 }
        runDir = environment["RUN_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? ".run"
        metricsDir = environment["METRICS_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "\(runDir)/metrics"
        dependencyTimeoutMs = try Self.integer(environment, "DEPENDENCY_TIMEOUT_MS", default: 1500, range: 50...60_000)
        if let smtp = environment["SMTP_URL"], !smtp.isEmpty, !(smtp.hasPrefix("smtp://") || smtp.hasPrefix("smtps://")) {
            throw Invalid(variable: "SMTP_URL", problem: "must be an smtp:// or smtps:// URL")
        }
        switch environment["SMTP_TLS"] ?? "" {
        case "", "auto", "required", "none": break
        default: throw Invalid(variable: "SMTP_TLS", problem: "must be auto, required or none")
        }
        if let ca = environment["SMTP_CA_FILE"], !ca.isEmpty, access(ca, R_OK) != 0 {
            throw Invalid(variable: "SMTP_CA_FILE", problem: "must name a readable PEM file (\(ca) is not)")
        }
        preparedStatements = try Self.preparedStatements(environment)
        logLevel = environment["LOG_LEVEL"] ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw Invalid(variable: "LOG_LEVEL", problem: "must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// The process environment.
    public static func fromProcess() throws -> Config {
        try Config(environment: processEnvironment())
    }

    /// `scheme://host[:port]` of the public URL, as browsers send it in `Origin`.
    public var publicOrigin: String {
        let scheme = publicBaseURL.hasPrefix("https://") ? "https://" : "http://"
        let rest = publicBaseURL.dropFirst(scheme.count)
        return scheme + (rest.split(separator: "/", maxSplits: 1).first ?? rest)
    }

    /// Whether cookies and links are for an https deployment.
    public var isHTTPS: Bool { publicBaseURL.hasPrefix("https://") }

    public func string(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }

    public func integer(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        try Self.integer(environment, name, default: value, range: range)
    }

    static func required(_ env: [String: String], _ name: String, _ rule: String, _ valid: (String) -> Bool) throws -> String {
        guard let value = env[name], !value.isEmpty else { throw Invalid(variable: name, problem: "is required but not set") }
        guard valid(value) else { throw Invalid(variable: name, problem: rule) }
        return value
    }

    static func integer(_ env: [String: String], _ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = env[name], !text.isEmpty else { return value }
        guard let number = Int(text), range.contains(number) else {
            throw Invalid(variable: name, problem: "must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                result[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            pointer += 1
        }
        return result
    }
}
