import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "replicate-webhook", media: MediaStorages.configured).serve(
    Router<Context>()
        .post("/hooks/replicate", maxBodyBytes: 256 * 1024, ReplicateWebhook.receive)
)
