import SharedKit
import SharedKitHTTP

FunctionRuntime(name: "replicate-webhook", media: MediaStorages.configured).serve(
    Router()
        .post("/hooks/replicate", maxBodyBytes: 256 * 1024, ReplicateWebhook.receive)
)
