/// What a process counts, in its `Metrics` file (opened at the first count): requests by route and status
/// class with their latency, and the domain events other code reports (`count`).
public final class ProcessMetrics {
    /// Latency buckets in seconds (Prometheus' defaults, which fit an API answering in milliseconds).
    public static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    let process: String
    let directory: String
    private var file: Metrics??
    /// Per route, method and status class: the keys of its counter and histogram series.
    private var requestSeries: [String: RequestSeries] = [:]

    /// Where a route's counter and histogram values are in the file (nil: the file is full).
    struct RequestSeries {
        let requests: Int?
        let buckets: [Int?]  // one per latency bucket, then +Inf
        let sum: Int?
        let count: Int?
    }

    public init(directory: String, process: String) {
        self.directory = directory
        self.process = process
    }

    var metrics: Metrics? {
        if let file { return file }
        let opened = Metrics(directory: directory, process: process)
        file = .some(opened)
        return opened
    }

    /// Adds to a counter: `count("atelier_quota_refunds_total", ["task": "image"])`.
    public func count(_ name: String, _ labels: KeyValuePairs<String, String>, by amount: Double = 1) {
        metrics?.add(Metrics.key(name, labels), amount)
    }

    /// One request answered by this function: its route pattern (`/api/v1/images/:id`, or `unmatched`),
    /// method, status and time inside the function.
    public func request(route: String, method: String, status: Int, seconds: Double) {
        guard let metrics else { return }
        let method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(method) ? method : "other"
        let statusClass = "\(min(max(status / 100, 1), 5))xx"
        let cacheKey = "\(method) \(statusClass) \(route)"
        let series: RequestSeries
        if let known = requestSeries[cacheKey] {
            series = known
        } else {
            let histogram = "atelier_http_request_duration_seconds"
            let labels = "function=\"\(process)\",route=\"\(Metrics.escape(route))\",method=\"\(method)\""
            let bounds = Self.latencyBuckets.map { Self.number($0) } + ["+Inf"]
            // Every bucket exists from the first request, the ones it did not fall into at 0.
            series = RequestSeries(
                requests: metrics.offset(of: "atelier_http_requests_total{\(labels),status=\"\(statusClass)\"}"),
                buckets: bounds.map { metrics.offset(of: "\(histogram)_bucket{\(labels),le=\"\($0)\"}") },
                sum: metrics.offset(of: "\(histogram)_sum{\(labels)}"),
                count: metrics.offset(of: "\(histogram)_count{\(labels)}"))
            requestSeries[cacheKey] = series
        }
        func add(_ offset: Int?, _ amount: Double = 1) { if let offset { metrics.add(at: offset, amount) } }
        add(series.requests)
        // Buckets are stored cumulative (each counts requests at or under its bound), as exposed.
        for (index, bound) in Self.latencyBuckets.enumerated() where seconds <= bound {
            add(series.buckets[index])
        }
        add(series.buckets[Self.latencyBuckets.count])
        add(series.sum, seconds)
        add(series.count)
    }

    /// A number as the exposition format writes it: `5` not `5.0`, `0.005`.
    public static func number(_ value: Double) -> String {
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.isNaN { return "NaN" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}
