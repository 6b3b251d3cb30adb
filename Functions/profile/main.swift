import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "profile", media: MediaStorages.configured).serve(
    Router<Context>()
        .get("/api/v1/profile", Profiles.show)
        .patch("/api/v1/profile", Profiles.update)
        .post("/api/v1/profile/password", Profiles.changePassword)
        .delete("/api/v1/profile", Profiles.deleteAccount)
        .get("/api/v1/usage", Profiles.usage)
)
