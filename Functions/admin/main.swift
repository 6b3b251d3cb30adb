import SharedKit
import SharedKitHTTP
import SharedKitRuntime

// The admin dashboard's API: a browser session of an admin only (re-checked on every request).
Services.start(function: "admin", media: MediaStorages.configured).serve(
    Router<Context>()
        .get("/api/v1/admin/users", AdminUsers.list)
        .get("/api/v1/admin/users/:id", AdminUsers.detail)
        .patch("/api/v1/admin/users/:id", AdminUsers.update)
        .delete("/api/v1/admin/users/:id", AdminUsers.delete)
        .get("/api/v1/admin/users/:id/sessions", AdminUsers.sessions)
        .delete("/api/v1/admin/users/:id/sessions", AdminUsers.revokeSessions)
        .get("/api/v1/admin/audit", AdminAudit.list)
        .get("/api/v1/admin/stats", AdminAudit.stats)
        .get("/api/v1/admin/webhooks", AdminWebhooks.list)
        .get("/api/v1/admin/generations/stuck", AdminJobs.stuck)
        .post("/api/v1/admin/generations/:id/reconcile", AdminJobs.reconcile)
)
