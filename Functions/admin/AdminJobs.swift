import SharedKit
import SharedKitCore
import SharedKitMedia
import SharedKitRuntime
import SharedKitStores

/// The stuck-job view: open generations older than a job of their kind should take, with the provider's
/// last word on each, and reconciling one by hand (what maintenance-cron does for every job, for this one).
enum AdminJobs {
    /// How long a job normally takes at most before it counts as stuck: images (generate, upscale,
    /// inpaint) finish within a minute or two at Replicate, videos within several minutes.
    static let expectedImageSeconds = 300
    static let expectedVideoSeconds = 1200

    /// What an open job is waiting for, in the words the page shows.
    static let waitingFor: SQLQuery = """
        CASE WHEN g.provider = 'local' THEN 'embedded'
             WHEN g.pending_outputs IS NOT NULL THEN 'copy'
             WHEN g.provider_id IS NOT NULL THEN 'webhook'
             WHEN g.deferred_start IS NOT NULL THEN 'throttled_start'
             ELSE 'lost_create' END
        """

    static func item(_ timeouts: OpenJobs.Timeouts) -> SQLQuery {
        """
        json_build_object(
            'id', g.id, 'task', g.task, 'provider', g.provider, 'provider_id', g.provider_id, 'status', g.status,
            'provider_status', g.provider_status, 'provider_checked_at', g.provider_checked_at,
            'waiting_for', \(waitingFor), 'copy_attempts', g.copy_attempts, 'prompt', g.input->>'prompt',
            'age_seconds', floor(extract(epoch FROM now() - g.created_at))::bigint,
            'times_out_at', g.created_at + make_interval(secs => CASE WHEN g.task = 'video' THEN \(timeouts.video)::integer ELSE \(timeouts.image)::integer END),
            'created_at', g.created_at, 'updated_at', g.updated_at,
            'user', json_build_object('id', u.id, 'email', u.email))::text
        """
    }

    /// `GET /api/v1/admin/generations/stuck[?older_than=SECONDS&limit=N]`: oldest first.
    static func stuck(_ request: Request, _ context: Context) throws -> Response {
        _ = try AdminAccess.require(request, context)
        let limit = try PageCursor.limit(request, default: 50, maximum: 200)
        var image = expectedImageSeconds, video = expectedVideoSeconds
        if let text = request.query("older_than"), !text.isEmpty {
            guard let seconds = Int(text), (0...604_800).contains(seconds) else {
                throw HTTPError(.badRequest, code: "invalid_filter", message: "older_than must be a number of seconds from 0 to 604800.")
            }
            (image, video) = (seconds, seconds)
        }
        let timeouts = try OpenJobs.Timeouts(context.config)
        let filter: SQLQuery = """
            g.status IN \(GenerationStatus.sql(GenerationStatus.open))
            AND g.created_at < now() - make_interval(secs => CASE WHEN g.task = 'video' THEN \(video)::integer ELSE \(image)::integer END)
            """
        let result = try context.db.query(
            """
            SELECT \(item(timeouts)) AS j, count(*) OVER ()::int AS total
            FROM generations g JOIN users u ON u.id = g.user_id WHERE \(filter)
            ORDER BY g.created_at, g.id LIMIT \(limit)
            """)
        let items = try result.rows.map { try $0.get("j", as: JSONValue.self) }
        let total: Int = try result.rows.first?.get("total") ?? 0
        return .json(
            JSONValue.object([
                "items": .array(items),
                "total": .number(Double(total)),
                "older_than": .object(["image": .number(Double(image)), "video": .number(Double(video))]),
            ]))
    }

    /// `POST /api/v1/admin/generations/:id/reconcile`: asks the provider about one open job now and applies
    /// the answer (or starts a throttled job, takes a lost prediction, retries a copy), then stops and
    /// refunds the job if it is past its timeout. Audited with the job's state before and after.
    static func reconcile(_ request: Request, _ context: Context) throws -> Response {
        let admin = try AdminAccess.require(request, context)
        let notFound = HTTPError(.notFound, code: "not_found", message: "No such generation.")
        guard let id: GenerationID = try request.id("id") else { throw notFound }
        let timeouts = try OpenJobs.Timeouts(context.config)
        func load() throws -> PostgresRow? {
            try context.db.query(
                """
                SELECT \(item(timeouts)) AS j, g.status, g.provider, g.provider_status, u.id AS user_id, u.email
                FROM generations g JOIN users u ON u.id = g.user_id WHERE g.id = \(id)
                """
            ).first
        }
        guard let before = try load() else { throw notFound }
        let status: String = try before.get("status")
        guard ["queued", "running"].contains(status) else {
            throw HTTPError(
                .conflict, code: "generation_not_open",
                message: "This generation has already ended (\(status)); there is nothing to reconcile.")
        }
        let open = OpenJobs(context)
        if try before.get("provider", as: String.self) == "replicate" && open.replicate == nil {
            throw HTTPError(
                .serviceUnavailable, code: "provider_not_configured",
                message: "This job was sent to Replicate, which is not configured on this server (REPLICATE_API_TOKEN).")
        }
        let step = try open.settle(id, timeouts: timeouts)
        guard let after = try load() else {
            throw HTTPError(.notFound, code: "not_found", message: "The generation was deleted meanwhile.")
        }
        func state(_ row: PostgresRow) throws -> [String: JSONValue] {
            [
                "status": .string(try row.get("status")),
                "provider_status": (try row.get("provider_status", as: String?.self)).map { .string($0) } ?? .null,
            ]
        }
        var changed = try state(after)
        changed["step"] = .string(step.rawValue)
        try AuditLog(context.db).record(
            actorID: admin.id, actorLabel: admin.email, action: "reconcile_generation",
            targetUserID: try before.get("user_id"), targetEmail: try before.get("email"),
            before: try state(before).merging(["generation_id": .string(id.text)]) { a, _ in a },
            after: changed, requestID: request.id)
        return .json(JSONValue.object(["step": .string(step.rawValue), "generation": try after.get("j", as: JSONValue.self)]))
    }
}
