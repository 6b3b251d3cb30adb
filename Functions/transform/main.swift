import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "transform", media: MediaStorages.configured).serve(
    Router<Context>()
        .post("/api/v1/images/transform", maxBodyBytes: Transform.maxBodyBytes, Transform.create)
)
