import SharedKit

FunctionRuntime(name: "keys").serve(
    Router()
        .get("/api/v1/keys", Keys.list)
        .post("/api/v1/keys", Keys.create)
        .delete("/api/v1/keys/:id", Keys.revoke)
)
