import SharedKit

FunctionRuntime(name: "enhance").serve(
    Router()
        .post("/api/v1/prompts/enhance", Enhance.suggest)
)
