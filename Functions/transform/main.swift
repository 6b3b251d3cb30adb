import SharedKit

FunctionRuntime(name: "transform").serve(
    Router()
        .post("/api/v1/images/transform", maxBodyBytes: Transform.maxBodyBytes, Transform.create)
)
