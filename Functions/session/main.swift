import SharedKit
import SharedKitRuntime

Services.start(function: "session").serve(
    Router<Context>()
        .post("/api/v1/login", Sessions.login)
        .post("/api/v1/logout", Sessions.logout)
        .get("/api/v1/session", Sessions.current)
)
