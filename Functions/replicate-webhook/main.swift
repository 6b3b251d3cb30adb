import SharedKit

FunctionRuntime(name: "replicate-webhook").serve(
    Router()
        .post("/hooks/replicate", maxBodyBytes: 256 * 1024, ReplicateWebhook.receive)
)
