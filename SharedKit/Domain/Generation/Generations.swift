public import SharedKitCore
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A generation (one job: an image, a transform or a video) is named by `ID<Generations.View>`.
public typealias GenerationID = ID<Generations.View>

/// Provider jobs and their state machine: queued → running → succeeded | failed | canceled. A status only
/// moves forward; a job that ends without success gives its quota back exactly once.
public struct Generations {
    public enum Task: String, Sendable { case image, upscale, inpaint, video }

    /// What each task costs in quota units.
    public struct Costs: Sendable {
        public let image: Int
        public let transform: Int
        public let video: Int

        public init(config: Config) throws {
            image = try config.integer("COST_IMAGE", default: 1, range: 0...1000)
            transform = try config.integer("COST_TRANSFORM", default: 1, range: 0...1000)
            video = try config.integer("COST_VIDEO", default: 10, range: 0...1000)
        }

        public func cost(of task: Task) -> Int {
            switch task {
            case .image: return image
            case .upscale, .inpaint: return transform
            case .video: return video
            }
        }
    }

    let db: PostgresConnection
    let ledger: QuotaLedger
    let metrics: ProcessMetrics

    public init(_ context: Context) {
        metrics = context.metrics
        db = context.db
        ledger = QuotaLedger(db: context.db, policy: context.quota, now: context.date())
    }

    /// Reserves the quota and records the job in one transaction: a refused reservation leaves no job.
    public func create<Input: Codable & Sendable>(
        userID: UserID, task: Task, provider: ProviderName, model: String?, input: Input, cost: Int,
        sourceImageID: ImageID? = nil, status: GenerationStatus = .running, webhookURL: String? = nil
    ) throws -> GenerationID {
        try db.transaction {
            let reservation = try ledger.reserve(userID: userID, cost: cost)
            let row = try db.query(
                """
                INSERT INTO generations (user_id, task, provider, model, status, input, cost, quota_period_start, source_image_id,
                                         started_at, webhook_url)
                VALUES (\(userID), \(task.rawValue), \(provider.rawValue), \(model), \(status.rawValue), \(PostgresJSON(input)), \(cost),
                        \(reservation.periodStart), \(sourceImageID), CASE WHEN \(status.rawValue) = 'running' THEN now() END, \(webhookURL))
                RETURNING id
                """)
            return try row.first!.get("id")
        }
    }

    /// The provider (and model) a job is handed to, before it is sent: a webhook that comes back at once
    /// finds it as that provider's.
    /// False when the job is no longer open (timed out meanwhile): it must not be sent anywhere.
    public func assign(_ id: GenerationID, to provider: ProviderName, model: String) throws -> Bool {
        try db.execute(
            """
            UPDATE generations SET provider = \(provider.rawValue), model = \(model), updated_at = now()
            WHERE id = \(id) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
            """) == 1
    }

    public func markSucceeded(_ id: GenerationID) throws {
        try db.execute(
            """
            UPDATE generations SET status = 'succeeded', error = NULL, pending_outputs = NULL,
                   completed_at = now(), updated_at = now(), started_at = COALESCE(started_at, now())
            WHERE id = \(id) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
            """)
    }

    /// Ends the job as failed (or canceled) with a message for the user, and refunds it once.
    public func markFailed(_ id: GenerationID, error: String, status: GenerationStatus = .failed) throws {
        let refundedTask = try db.transaction { () -> String? in
            let task = try db.query(
                """
                UPDATE generations SET status = \(status.rawValue), error = \(error), completed_at = now(), updated_at = now()
                WHERE id = \(id) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                RETURNING task
                """
            ).first?.get("task", as: String.self)
            return try ledger.refund(generationID: id) ? task ?? "unknown" : nil
        }
        if let refundedTask {
            let metrics = metrics
            db.onCommit { metrics.count("atelier_quota_refunds_total", ["task": refundedTask]) }
        }
    }

    public struct View: JSONWritable, Sendable {
        public let id: GenerationID
        public let task: String
        public let provider: String
        public let model: String?
        public let webhookUrl: String?
        public let status: String
        public let error: String?
        public let cost: Int
        public let refunded: Bool
        public let imageIds: [String]
        public let videoIds: [String]
        public let createdAt: Date
        public let startedAt: Date?
        public let completedAt: Date?

        public func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("completed_at", completedAt)
                o.field("cost", cost)
                o.field("created_at", createdAt)
                o.field("error", error)
                o.field("id", id)
                o.field("image_ids", imageIds)
                o.field("model", model)
                o.field("provider", provider)
                o.field("refunded", refunded)
                o.field("started_at", startedAt)
                o.field("status", status)
                o.field("task", task)
                o.field("video_ids", videoIds)
                o.field("webhook_url", webhookUrl)
            }
        }
    }

    /// The job as its owner sees it; another user's id is simply not found.
    public func view(id: GenerationID, userID: UserID) throws -> View? {
        return try db.query(Self.viewQuery(id: id, userID: userID)).records(View.self).first
    }

    /// The job just made for the request: a typed error (not a crash that answers nginx's 503 after the
    /// quota was charged) should it be missing.
    public func made(id: GenerationID, userID: UserID) throws -> View {
        guard let view = try view(id: id, userID: userID) else {
            throw DependencyUnavailable(.database, detail: "generation \(id) vanished right after it was made")
        }
        return view
    }

    /// One job of a user in the columns of `View`, for `Context.read`.
    public static func viewQuery(id: GenerationID, userID: UserID) -> SQLQuery {
        """
        SELECT g.id, g.task, g.provider, g.model, g.webhook_url, g.status, g.error, g.cost, g.refunded,
               COALESCE((SELECT json_agg(i.id ORDER BY i.created_at) FROM images i WHERE i.generation_id = g.id), '[]') AS image_ids,
               COALESCE((SELECT json_agg(v.id ORDER BY v.created_at) FROM videos v WHERE v.generation_id = g.id), '[]') AS video_ids,
               g.created_at, g.started_at, g.completed_at
        FROM generations g WHERE g.id = \(id)::uuid AND g.user_id = \(userID)::uuid
        """
    }
}

extension Generations.View: PostgresRecord {
    /// The columns of `viewQuery` in order.
    public init(_ row: inout PostgresRow.Reader) throws {
        self.init(
            id: try row.next(), task: try row.next(), provider: try row.next(), model: try row.next(), webhookUrl: try row.next(),
            status: try row.next(), error: try row.next(), cost: try row.next(),
            refunded: try row.next(), imageIds: try row.next(PostgresJSON<[String]>.self).value,
            videoIds: try row.next(PostgresJSON<[String]>.self).value, createdAt: try row.next(), startedAt: try row.next(),
            completedAt: try row.next())
    }
}
