import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "video", media: MediaStorages.configured).serve(
    Router<Context>()
        .post("/api/v1/videos", Videos.create)
        .get("/api/v1/videos", Videos.list)
        .get("/api/v1/videos/options", Videos.options)
        .get("/api/v1/videos/:id", Videos.show)
        .delete("/api/v1/videos/:id", Videos.delete)
)
