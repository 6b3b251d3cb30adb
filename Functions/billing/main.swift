import SharedKit
import SharedKitRuntime

Services.start(function: "billing").serve(
    Router<Context>()
        .get("/api/v1/plans", Billing.plans)
        .get("/api/v1/subscription", Billing.show)
        .post("/api/v1/subscription", Billing.subscribe)
        .post("/api/v1/subscription/verify", Billing.verify)
        .post("/api/v1/subscription/cancel", Billing.cancel)
)
