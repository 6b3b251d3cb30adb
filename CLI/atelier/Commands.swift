import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

enum Commands {
    static func fail(_ line: String) -> Never {
        var bytes = Array(("atelier: " + line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }

    struct UsageError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The CLI's PostgreSQL connection: DATABASE_URL, preparing statements unless
    /// DATABASE_PREPARED_STATEMENTS=off (behind a transaction pooler, named statements would collide).
    static func database() throws -> PostgresConnection {
        let setting = getenv("DATABASE_PREPARED_STATEMENTS").map { ["DATABASE_PREPARED_STATEMENTS": String(cString: $0)] } ?? [:]
        return PostgresConnection(
            url: try environment("DATABASE_URL"), timeoutMs: 10_000,
            prepareStatements: try Config.preparedStatements(setting))
    }

    static func environment(_ name: String) throws -> String {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
            throw UsageError(message: "\(name) is required but not set")
        }
        return value
    }

    static func migrate(dir: String?) throws -> Int32 {
        let folder = dir ?? getenv("MIGRATIONS_DIR").map { String(cString: $0) } ?? "Migrations"
        let db = try database()
        let migrations = try Migrator.load(folder: folder)
        let applied = try Migrator(db: db).migrate(migrations)
        print(
            applied.isEmpty
                ? "migrate: up to date (\(migrations.count) migrations)"
                : "migrate: applied \(applied.joined(separator: ", "))")
        return 0
    }

    /// The origin browsers load media from when media live in S3 (for the pages' Content-Security-Policy).
    /// This host's counters in Prometheus' text format (what /metrics serves, less the gauges read from
    /// PostgreSQL), for node_exporter's textfile collector on function hosts nginx does not scrape.
    static func metrics() -> Int32 {
        print(Exposition.render(MetricsDirectory.collect(MetricsDirectory.configured())), terminator: "")
        return 0
    }

    static func mediaOrigin() throws -> Int32 {
        if let storage = try S3MediaStorage(config: try Config.fromProcess()) { print(storage.browserOrigin) }
        return 0
    }
}
