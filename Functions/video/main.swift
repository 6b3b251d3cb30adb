import SharedKit
import SharedKitHTTP

FunctionRuntime(name: "video", media: MediaStorages.configured).serve(
    Router()
        .post("/api/v1/videos", Videos.create)
        .get("/api/v1/videos", Videos.list)
        .get("/api/v1/videos/options", Videos.options)
        .get("/api/v1/videos/:id", Videos.show)
        .delete("/api/v1/videos/:id", Videos.delete)
)
