import Logging

@testable import SharedKit
@testable public import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// Shared helpers: a context for handlers, and the services `make test` starts.
enum TestSupport {
    static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The PostgreSQL `make test` starts; its absence is a failure, never a skip.
    static var databaseURL: String {
        guard let url = environment("TEST_DATABASE_URL") else {
            fatalError("TEST_DATABASE_URL is not set: run the suite with `make test`, which starts PostgreSQL")
        }
        return url
    }

    static var redisURL: String {
        guard let url = environment("TEST_REDIS_URL") else {
            fatalError("TEST_REDIS_URL is not set: run the suite with `make test`, which starts Redis")
        }
        return url
    }

    static var binDir: String { environment("BIN_DIR") ?? ".build/release" }

    static func config(_ overrides: [String: String] = [:]) throws -> Config {
        var env = [
            "DATABASE_URL": environment("TEST_DATABASE_URL") ?? "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": environment("TEST_REDIS_URL") ?? "redis://127.0.0.1:1/0",
            "PUBLIC_BASE_URL": "http://127.0.0.1:8080",
            "APP_SECRET": "test-secret-test-secret-test-secret-0123",
        ]
        env.merge(overrides) { _, new in new }
        return try Config(environment: env)
    }

    /// A fresh id of any kind, as PostgreSQL's gen_random_uuid() would make one.
    static func newID<Entity>() -> ID<Entity> {
        let hex = Array(Random.hex(byteCount: 16))
        let text = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
        return ID(text)!
    }

    static func context(_ overrides: [String: String] = [:]) throws -> Context {
        Random.initialise()
        var logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        logger.logLevel = .critical
        return try Services(config: try config(overrides), functionName: "test", logger: logger).standaloneContext()
    }
}

/// Ids written out in tests: a literal that is not a UUID stops the test at once.
extension ID: ExpressibleByStringLiteral {
    public init(stringLiteral text: String) {
        guard let id = ID(text) else { fatalError("\(text) is not a UUID") }
        self = id
    }
}
