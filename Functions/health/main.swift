import SharedKit

FunctionRuntime(name: "health").serve(
    Router()
        .get("/api/v1/health", Health.check)
        .get("/api/v1/health/live", Health.live)
        .get("/metrics", MetricsEndpoint.scrape)
)
