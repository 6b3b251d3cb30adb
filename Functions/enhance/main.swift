import SharedKit
import SharedKitRuntime

Services.start(function: "enhance").serve(
    Router<Context>()
        .post("/api/v1/prompts/enhance", Enhance.suggest)
)
