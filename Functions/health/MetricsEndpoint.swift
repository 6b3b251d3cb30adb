import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

/// `GET /metrics`: the host's counters in Prometheus' text format, for the addresses in
/// METRICS_ALLOWED_ADDRS only (comma-separated, as FCGI_WEB_SERVER_ADDRS lists the web servers; default
/// this host: 127.0.0.1 and ::1). Everyone else gets 403 before anything is read.
///
/// Counters come from the metrics files of every process of every function on this host (see `Metrics`);
/// the state of jobs and payments is read from PostgreSQL at the scrape, so it is exact whichever host
/// is scraped. With PostgreSQL down the counters are still served, with `atelier_database_up 0`.
enum MetricsEndpoint {
    static func scrape(_ request: Request, _ context: Context) throws -> Response {
        let allowed = (context.config.string("METRICS_ALLOWED_ADDRS") ?? "127.0.0.1,::1")
            .split(separator: ",").map { $0.trimmingWhitespace().description }
        guard allowed.contains(request.clientAddress) else {
            throw HTTPError(
                .forbidden, code: "metrics_forbidden",
                message: "Metrics are served only to the addresses in METRICS_ALLOWED_ADDRS.")
        }
        var series = MetricsDirectory.collect(context.config.metricsDir)
        do {
            for (key, value) in try databaseGauges(context) { series[key] = value }
            series["atelier_database_up"] = 1
        } catch {
            series["atelier_database_up"] = 0
        }
        var response = Response.text(Exposition.render(series), contentType: "text/plain; version=0.0.4; charset=utf-8")
        response.setHeader("Cache-Control", "no-store")
        return response
    }

    /// Jobs and payments as PostgreSQL has them now.
    static func databaseGauges(_ context: Context) throws -> [String: Double] {
        var gauges: [String: Double] = [:]
        for row in try context.db.query(
            """
            SELECT provider, task, status, count(*)::float8 AS n FROM generations GROUP BY provider, task, status
            """
        ).rows {
            gauges[
                Metrics.key(
                    "atelier_generations",
                    [
                        "provider": try row.get("provider"), "task": try row.get("task"),
                        "status": try row.get("status"),
                    ])] = try row.get("n")
        }
        for row in try context.db.query(
            """
            SELECT provider, task, count(*)::float8 AS n FROM generations WHERE status IN \(GenerationStatus.sql(GenerationStatus.open)) GROUP BY provider, task
            """
        ).rows {
            gauges[Metrics.key("atelier_open_jobs", ["provider": try row.get("provider"), "task": try row.get("task")])] = try row.get("n")
        }
        let oldest =
            try context.db.query(
                """
                SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age FROM generations WHERE status IN \(GenerationStatus.sql(GenerationStatus.open))
                """
            ).first?.get("age", as: Double.self) ?? 0
        gauges["atelier_oldest_open_job_age_seconds"] = oldest
        for row in try context.db.query("SELECT status, count(*)::float8 AS n FROM payments GROUP BY status").rows {
            gauges[Metrics.key("atelier_payments", ["status": try row.get("status")])] = try row.get("n")
        }
        return gauges
    }
}
