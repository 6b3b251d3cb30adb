import SharedKit

/// `GET /api/v1/health`: whether this function can reach PostgreSQL and Redis right now. Each check is
/// bounded by the connection's timeout, so a hung dependency still gets an answer within about 2 s.
enum Health {
    struct Report: Encodable {
        let status: String
        let database: String
        let redis: String
    }

    static func check(_ request: Request, _ context: Context) throws -> Response {
        let database = probe { try context.db.query("SELECT 1") }
        let redis = probe { try context.redis.command("PING") }
        let healthy = database == "ok" && redis == "ok"
        let report = Report(status: healthy ? "ok" : "unavailable", database: database, redis: redis)
        return try .json(report, status: healthy ? .ok : .serviceUnavailable)
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
