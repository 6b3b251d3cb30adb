import SharedKit
import SharedKitRuntime

Services.start(function: "keys").serve(
    Router<Context>()
        .get("/api/v1/keys", Keys.list)
        .post("/api/v1/keys", Keys.create)
        .delete("/api/v1/keys/:id", Keys.revoke)
        .get("/api/v1/webhooks/secret", Webhooks.secret)
        .post("/api/v1/webhooks/secret/rotate", Webhooks.rotate)
        .get("/api/v1/webhooks/deliveries", Webhooks.deliveries)
        .post("/api/v1/webhooks/deliveries/:id/redeliver", Webhooks.redeliver)
)
