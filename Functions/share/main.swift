import SharedKit
import SharedKitHTTP

FunctionRuntime(name: "share", media: MediaStorages.configured).serve(
    Router()
        .post("/api/v1/shares", Shares.create)
        .get("/api/v1/shares", Shares.list)
        .delete("/api/v1/shares/:id", Shares.revoke)
        .get("/s/:token", SharedPage.page)
        .get("/s/:token/file", SharedPage.file)
        .get("/s/:token/poster", SharedPage.poster)
)
