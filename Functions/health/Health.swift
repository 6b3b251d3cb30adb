import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

/// Two answers, for two audiences:
/// - `GET /api/v1/health` (readiness): whether this function can reach PostgreSQL and Redis right now,
///   for load balancers and monitoring. Each check is bounded by the connection's timeout, so a hung
///   dependency still gets an answer (503) within about 2 s.
/// - `GET /api/v1/health/live` (liveness): that a function process answers at all; it touches nothing, so
///   a restart loop is never started by a dependency being down (nginx, systemd watchdogs, orchestrators).
enum Health {
    struct Report: JSONWritable {
        let status: String
        let database: String?
        let redis: String?

        func write(to json: inout JSONWriter) {
            json.object { o in
                if let database { o.field("database", database) }
                if let redis { o.field("redis", redis) }
                o.field("status", status)
            }
        }
    }

    static func check(_ request: Request, _ context: Context) throws -> Response {
        let database = probe { try context.db.query("SELECT 1") }
        let redis = probe { try context.redis.command("PING") }
        let healthy = database == "ok" && redis == "ok"
        let report = Report(status: healthy ? "ok" : "unavailable", database: database, redis: redis)
        return .json(report, status: healthy ? .ok : .serviceUnavailable)
    }

    static func live(_ request: Request, _ context: Context) throws -> Response {
        .json(Report(status: "ok", database: nil, redis: nil))
    }

    private static func probe(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "ok"
        } catch {
            return "unavailable"
        }
    }
}
