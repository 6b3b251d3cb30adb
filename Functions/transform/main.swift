import SharedKit
import SharedKitHTTP

FunctionRuntime(name: "transform", media: MediaStorages.configured).serve(
    Router()
        .post("/api/v1/images/transform", maxBodyBytes: Transform.maxBodyBytes, Transform.create)
)
