import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "generate", media: MediaStorages.configured).serve(
    Router<Context>()
        .post("/api/v1/images", Images.create)
        .get("/api/v1/images", Images.list)
        .get("/api/v1/images/:id", Images.show)
        .delete("/api/v1/images/:id", Images.delete)
        .get("/api/v1/generations/:id", Images.generation)
)
