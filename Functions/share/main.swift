import SharedKit
import SharedKitHTTP
import SharedKitRuntime

Services.start(function: "share", media: MediaStorages.configured).serve(
    Router<Context>()
        .post("/api/v1/shares", Shares.create)
        .get("/api/v1/shares", Shares.list)
        .delete("/api/v1/shares/:id", Shares.revoke)
        .get("/s/:token", SharedPage.page)
        .get("/s/:token/file", SharedPage.file)
        .get("/s/:token/poster", SharedPage.poster)
)
