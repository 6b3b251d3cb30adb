import Testing

@testable import SharedKit
@testable import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// The metrics files: two processes' counts summed, a closed file folded into the retired counts once,
/// and the exposition's grouping and order.
@Suite struct MetricsTests {
    static func directory() -> String {
        let path = "/tmp/atelier-metrics-test-\(Random.hex(byteCount: 6))"
        mkdir(path, 0o755)
        return path
    }

    @Test func filesOfLiveAndExitedProcessesAreSummedAndFoldedOnce() throws {
        let dir = Self.directory()
        var first: Metrics? = try #require(Metrics(directory: dir, process: "one"))
        let second = try #require(Metrics(directory: dir, process: "two"))
        first?.add("atelier_x_total{a=\"1\"}", 2)
        first?.add("atelier_x_total{a=\"1\"}")
        second.add("atelier_x_total{a=\"1\"}", 4)
        second.add("atelier_y_total", 0.5)
        #expect(MetricsDirectory.collect(dir) == ["atelier_x_total{a=\"1\"}": 7, "atelier_y_total": 0.5])
        #expect(MetricsDirectory.files(in: dir).filter { $0.hasSuffix(".metrics") }.count == 2)

        first = nil  // the process is gone: its lock is free
        #expect(MetricsDirectory.collect(dir) == ["atelier_x_total{a=\"1\"}": 7, "atelier_y_total": 0.5])
        #expect(MetricsDirectory.collect(dir) == ["atelier_x_total{a=\"1\"}": 7, "atelier_y_total": 0.5])
        #expect(Set(MetricsDirectory.files(in: dir).filter { $0.hasSuffix(".metrics") }).count == 2)  // two + retired
        #expect(MetricsDirectory.files(in: dir).contains("retired.metrics"))
        second.add("atelier_y_total", 1)
        #expect(MetricsDirectory.collect(dir)["atelier_y_total"] == 1.5)
    }

    @Test func requestsCountCumulativeBucketsAndEscapeLabels() throws {
        let dir = Self.directory()
        let metrics = ProcessMetrics(directory: dir, process: "f")
        metrics.request(route: "/a/:id", method: "GET", status: 404, seconds: 0.02)
        metrics.request(route: "/a/:id", method: "BREW", status: 200, seconds: 3)
        metrics.count("atelier_z_total", ["why": "a \"quoted\" \\ thing"])
        let values = MetricsDirectory.collect(dir)
        let labels = "function=\"f\",route=\"/a/:id\",method=\"GET\""
        #expect(values["atelier_http_requests_total{\(labels),status=\"4xx\"}"] == 1)
        #expect(values["atelier_http_request_duration_seconds_bucket{\(labels),le=\"0.01\"}"] == 0)
        #expect(values["atelier_http_request_duration_seconds_bucket{\(labels),le=\"0.025\"}"] == 1)
        #expect(values["atelier_http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"}"] == 1)
        #expect(values["atelier_http_requests_total{function=\"f\",route=\"/a/:id\",method=\"other\",status=\"2xx\"}"] == 1)
        #expect(values["atelier_z_total{why=\"a \\\"quoted\\\" \\\\ thing\"}"] == 1)

        let text = Exposition.render(values)
        let lines = text.split(separator: "\n").map(String.init)
        let type = try #require(lines.firstIndex(of: "# TYPE atelier_http_request_duration_seconds histogram"))
        let bounds = lines[(type + 1)...].prefix { !$0.hasPrefix("#") }.filter { $0.contains("method=\"GET\"") && $0.contains("_bucket") }
            .map { $0.split(separator: "le=\"")[1].prefix { $0 != "\"" } }
        #expect(bounds == ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"])
        #expect(text.contains("# TYPE atelier_http_requests_total counter\n"))
    }
}
