import SharedKit
import SharedKitRuntime

Services.start(function: "health").serve(
    Router<Context>()
        .get("/api/v1/health", Health.check)
        .get("/api/v1/health/live", Health.live)
        .get("/metrics", MetricsEndpoint.scrape)
)
