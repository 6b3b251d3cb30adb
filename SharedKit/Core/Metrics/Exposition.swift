/// The Prometheus text exposition format (version 0.0.4) of a host's series.
public enum Exposition {
    /// Every family Atelier exposes: its type and help line.
    public static let families: [String: (type: String, help: String)] = [
        "atelier_http_requests_total": ("counter", "Requests answered by the functions, by function, route, method and status class."),
        "atelier_http_request_duration_seconds": ("histogram", "Time a function took to answer a request, by function, route and method."),
        "atelier_quota_refunds_total": ("counter", "Generations whose quota was refunded (failed, canceled or timed out), by task."),
        "atelier_webhook_deliveries_total": ("counter", "Webhook deliveries received, by provider and outcome."),
        "atelier_process_restarts_total": ("counter", "Function processes that died and were restarted by the supervisor, by function."),
        "atelier_generations": ("gauge", "Generations recorded in PostgreSQL, by provider, task and status."),
        "atelier_open_jobs": ("gauge", "Generations still queued or running, by provider and task."),
        "atelier_oldest_open_job_age_seconds": ("gauge", "Age of the oldest generation still queued or running (0 when none)."),
        "atelier_payments": ("gauge", "Payments recorded in PostgreSQL, by status."),
        "atelier_database_up": ("gauge", "1 when the scrape could read PostgreSQL, else 0 (the gauges from it are then missing)."),
    ]

    /// The text for `series` (key -> value), each family's samples together under its TYPE and HELP, in a
    /// stable order (histogram buckets by bound).
    public static func render(_ series: [String: Double]) -> String {
        var byFamily: [String: [(key: String, value: Double)]] = [:]
        for (key, value) in series {
            byFamily[family(of: key), default: []].append((key, value))
        }
        var text = ""
        for name in byFamily.keys.sorted() {
            if let known = families[name] {
                text += "# HELP \(name) \(known.help)\n# TYPE \(name) \(known.type)\n"
            }
            for sample in byFamily[name]!.sorted(by: { order($0.key) < order($1.key) }) {
                text += "\(sample.key) \(ProcessMetrics.number(sample.value))\n"
            }
        }
        return text
    }

    /// The family a series belongs to: its name, less a histogram's `_bucket`, `_sum` or `_count`.
    static func family(of key: String) -> String {
        let name = key.firstIndex(of: "{").map { String(key[..<$0]) } ?? key
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if families[base]?.type == "histogram" { return base }
        }
        return name
    }

    /// Sorts a family's samples: by labels other than `le`, then `_bucket` by bound, `_count`, `_sum`.
    static func order(_ key: String) -> (String, Int, Double) {
        let name = key.firstIndex(of: "{").map { String(key[..<$0]) } ?? key
        var labels = key.firstIndex(of: "{").map { String(key[$0...]) } ?? ""
        var bound = 0.0
        if let range = labels.firstRange(of: ",le=\"") {
            let rest = labels[range.upperBound...]
            let value = rest.prefix { $0 != "\"" }
            bound = value == "+Inf" ? .infinity : Double(value) ?? 0
            labels = String(labels[..<range.lowerBound]) + "}"
        }
        let kind = name.hasSuffix("_bucket") ? 0 : name.hasSuffix("_count") ? 1 : 2
        return (labels, kind, bound)
    }
}
