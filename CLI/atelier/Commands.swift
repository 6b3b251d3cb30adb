#if canImport(Glibc)
import Glibc
#endif
import SharedKit
import SharedKitHTTP

enum Commands {
    static func printUsage() {
        print("""
            usage: atelier <command> [options]

              migrate [--dir Migrations]     apply pending database migrations (DATABASE_URL)
              create-admin --email E         create (or promote) an admin; a password piped on stdin is
                                             used, otherwise one is generated and printed once
              grant-premium --email E --until YYYY-MM-DD|none
                                             grant (or revoke) premium without a subscription
              revoke-sessions --email E      log a user out everywhere
              delete-user --email E          delete an account and everything it owns
            (each of the last three is recorded in the audit log with the actor "cli")
              doctor [--json yes]            check every configured integration (database, Redis, public
                                             URL, Replicate, Razorpay, SMTP, media) and say what is wrong
              media-origin                   print where browsers load media from when it is not this site
                                             (S3), for nginx.conf's $atelier_media_origin; nothing otherwise
              metrics                        print this host's counters (METRICS_DIR) in Prometheus' text
                                             format, as /metrics serves them without the database gauges
              supervise --sockets DIR --bin DIR --functions name=MIN:MAX:IDLE,… [--cron name=SECONDS,…] [--logs DIR]
                                             run each function under FastCGI: MIN resident processes
                                             (restarted when they die), up to MAX started on demand that
                                             exit after IDLE seconds unused (name=N: N resident); run cron
                                             functions on a timer
            """)
    }

    static func fail(_ line: String) -> Never {
        var bytes = Array(("atelier: " + line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }

    /// Reads `--name value` options.
    static func options(_ arguments: [String]) throws -> [String: String] {
        var result: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let key = arguments[index]
            guard key.hasPrefix("--") else { throw UsageError(message: "unexpected argument \(key)") }
            guard index + 1 < arguments.count else { throw UsageError(message: "\(key) needs a value") }
            result[String(key.dropFirst(2))] = arguments[index + 1]
            index += 2
        }
        return result
    }

    struct UsageError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// The CLI's PostgreSQL connection: DATABASE_URL, preparing statements unless
    /// DATABASE_PREPARED_STATEMENTS=off (behind a transaction pooler, named statements would collide).
    static func database() throws -> PostgresConnection {
        let setting = getenv("DATABASE_PREPARED_STATEMENTS").map { ["DATABASE_PREPARED_STATEMENTS": String(cString: $0)] } ?? [:]
        return PostgresConnection(url: try environment("DATABASE_URL"), timeoutMs: 10_000,
                                  prepareStatements: try Config.preparedStatements(setting))
    }

    static func environment(_ name: String) throws -> String {
        guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
            throw UsageError(message: "\(name) is required but not set")
        }
        return value
    }

    static func migrate(_ arguments: [String]) throws -> Int32 {
        let options = try options(arguments)
        let folder = options["dir"] ?? getenv("MIGRATIONS_DIR").map { String(cString: $0) } ?? "Migrations"
        let db = try database()
        let migrations = try Migrator.load(folder: folder)
        let applied = try Migrator(db: db).migrate(migrations)
        print(applied.isEmpty
              ? "migrate: up to date (\(migrations.count) migrations)"
              : "migrate: applied \(applied.joined(separator: ", "))")
        return 0
    }

    /// The origin browsers load media from when media live in S3 (for the pages' Content-Security-Policy).
    /// This host's counters in Prometheus' text format (what /metrics serves, less the gauges read from
    /// PostgreSQL), for node_exporter's textfile collector on function hosts nginx does not scrape.
    static func metrics(_ arguments: [String]) throws -> Int32 {
        _ = try options(arguments)
        print(Exposition.render(MetricsDirectory.collect(MetricsDirectory.configured())), terminator: "")
        return 0
    }

    static func mediaOrigin(_ arguments: [String]) throws -> Int32 {
        _ = try options(arguments)
        if let storage = try S3MediaStorage(config: try Config.fromProcess()) { print(storage.browserOrigin) }
        return 0
    }
}
