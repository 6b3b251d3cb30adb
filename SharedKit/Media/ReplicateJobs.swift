import Logging
public import SharedKit
public import SharedKitCore
public import SharedKitHTTP
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Generations run by Replicate. A job is created with a webhook and answered 202; the webhook (or the
/// reconciler, when a webhook never comes) moves it forward. Outputs are copied into our own storage at
/// completion, because Replicate's URLs expire after an hour.
public struct ReplicateJobs {
    /// What a generation was asked, as stored in `generations.input` (keys vary by task).
    public struct StoredJob: Codable, Sendable {
        public let prompt: String?
        public let style: String?
        public let colour: String?
        public let aspectRatio: String?
        public let seed: Int64?
        public let mode: String?
        public let scale: Int?
        public let sourceImageId: String?
        public let maskKey: String?
    }

    public static let maxOutputBytes = 100 * 1024 * 1024
    public static let maxCopyAttempts = 5

    let context: Context
    public let client: ReplicateClient
    let generations: Generations

    public init?(_ context: Context) {
        guard let client = ReplicateClient(context.config) else { return nil }
        self.context = context
        self.client = client
        self.generations = Generations(context)
    }

    /// Creates the prediction for a generation already recorded (its quota reserved, its provider and
    /// model set). Throws `ReplicateClient.Throttled` or `DependencyUnavailable(.provider)` when provably
    /// nothing was created (the caller tries another provider, defers the start, or fails and refunds the
    /// job). If the answer was lost after the request went out (a timeout, a 5xx), the prediction may
    /// exist and be billed: the generation stays queued without a provider id, nothing is sent again, and
    /// the webhook (whose URL names the generation) or the reconciler (`adopt`) finds it; a job never
    /// found times out and is refunded like any other.
    public func start(generationID: GenerationID, model: String, input: [String: JSONValue]) throws {
        let prediction: ReplicateClient.Prediction
        do {
            prediction = try client.create(model: model, input: input, reference: generationID)
        } catch let uncertain as ReplicateClient.Uncertain {
            context.logger.warning(
                "replicate create uncertain; waiting for its webhook or the reconciler",
                metadata: ["generation.id": .string(generationID.text), "error": .string(uncertain.description)])
            return
        } catch let throttled as ReplicateClient.Throttled {
            throw throttled
        } catch let unavailable as DependencyUnavailable {
            throw unavailable
        } catch {
            throw DependencyUnavailable(.provider, detail: "\(error)")
        }
        try recordCreated(prediction, generationID)
    }

    /// The prediction Replicate created for a job: its id and status on the job (running once Replicate
    /// is processing it), and at once its outcome when it has already ended.
    func recordCreated(_ prediction: ReplicateClient.Prediction, _ generationID: GenerationID) throws {
        try context.db.execute(
            """
            UPDATE generations SET provider_id = \(prediction.id), deferred_start = NULL,
                   provider_status = \(prediction.status), provider_checked_at = now(),
                   status = CASE WHEN \(prediction.status) = 'processing' THEN 'running' ELSE status END,
                   started_at = CASE WHEN \(prediction.status) = 'processing' THEN now() ELSE started_at END,
                   updated_at = now()
            WHERE id = \(generationID) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
            """)
        if prediction.isTerminal { try apply(prediction) }
    }

    /// A job Replicate throttled with no other provider to go to: it waits, queued, for maintenance-cron
    /// to start it (`startDeferred`).
    public func deferStart(generationID: GenerationID, model: String, input: [String: JSONValue]) throws {
        context.logger.notice("replicate throttled; the job is started later", metadata: ["generation.id": .string(generationID.text)])
        try context.db.execute(
            """
            UPDATE generations SET deferred_start = \(DeferredStart(model: model, input: input).json)::jsonb, updated_at = now()
            WHERE id = \(generationID) AND status = 'queued'
            """)
    }

    /// What a throttled job sends once Replicate takes it. Kept as JSON written and read as is: the model's
    /// input names (`output_format`, `prompt_optimizer` …) must not go through the API's key conversion.
    public struct DeferredStart: Sendable {
        public let model: String
        public let input: [String: JSONValue]

        public init(model: String, input: [String: JSONValue]) {
            self.model = model
            self.input = input
        }

        /// From the `deferred_start` column's text; nil when it is not one.
        public init?(json text: String) {
            let bytes = Array(text.utf8)
            guard let value = bytes.withUnsafeBufferPointer({ JSONValue.parse($0) }), let model = value["model"]?.string,
                case .object(let input)? = value["input"]
            else { return nil }
            self.init(model: model, input: input)
        }

        var json: String {
            String(decoding: JSONWriter.bytes(of: JSONValue.object(["model": .string(model), "input": .object(input)])), as: UTF8.self)
        }
    }

    /// Starts a job that was throttled at creation (maintenance-cron). True when it was started or handed
    /// to the reconciler; false while Replicate still throttles (the caller stops for this run). A create
    /// that provably did not happen is put back for the next run.
    public func startDeferred(generationID: GenerationID, _ deferred: DeferredStart) throws -> Bool {
        // Claimed before sending: if this process dies after Replicate took the job, nothing sends it
        // again; the prediction is adopted through its webhook URL like any lost answer.
        let claimed = try context.db.execute(
            """
            UPDATE generations SET deferred_start = NULL, updated_at = now()
            WHERE id = \(generationID) AND status = 'queued' AND deferred_start IS NOT NULL
            """)
        guard claimed == 1 else { return true }
        func putBack() throws {
            try context.db.execute(
                """
                UPDATE generations SET deferred_start = \(deferred.json)::jsonb, updated_at = now()
                WHERE id = \(generationID) AND status = 'queued' AND provider_id IS NULL
                """)
        }
        do {
            try recordCreated(try client.create(model: deferred.model, input: deferred.input, reference: generationID), generationID)
            return true
        } catch is ReplicateClient.Throttled {
            try putBack()
            return false
        } catch is ReplicateClient.Uncertain {
            // It may exist now: never sent again; its webhook or the reconciler adopts it.
            return true
        } catch let unavailable as DependencyUnavailable where unavailable.dependency == .provider {
            // Refused or never sent (the client says so only when it is sure): try again next run.
            try putBack()
            throw unavailable
        }
    }

    /// A prediction whose create answer was lost: its webhook URL names the generation, which takes its
    /// id if it is still waiting for one. The row (id, status), or nil when nothing matches.
    func adopt(_ prediction: ReplicateClient.Prediction) throws -> PostgresRow? {
        guard let generationID = prediction.generationReference else { return nil }
        return try context.db.query(
            """
            UPDATE generations SET provider_id = \(prediction.id), updated_at = now(),
                   provider_status = \(prediction.status), provider_checked_at = now()
            WHERE id = \(generationID) AND provider = 'replicate' AND provider_id IS NULL AND status IN \(GenerationStatus.sql(GenerationStatus.open))
            RETURNING id, status
            """
        ).first
    }

    /// Moves the generation of a prediction forward (never back). On success the outputs are recorded as
    /// pending and copied at once, or, with `copyLater`, after the response (the reconciler retries a copy
    /// that fails or never runs). Returns false for a prediction that is not ours (yet).
    @discardableResult
    public func apply(_ prediction: ReplicateClient.Prediction, copyLater: Bool = false) throws -> Bool {
        // Finding an open job records what the provider said of it (the admins' stuck-job view shows it);
        // a late word about a finished job changes nothing.
        guard
            let row = try context.db.query(
                """
                UPDATE generations SET
                       provider_status = CASE WHEN status IN \(GenerationStatus.sql(GenerationStatus.open)) THEN \(prediction.status) ELSE provider_status END,
                       provider_checked_at = CASE WHEN status IN \(GenerationStatus.sql(GenerationStatus.open)) THEN now() ELSE provider_checked_at END
                WHERE provider = 'replicate' AND provider_id = \(prediction.id)
                RETURNING id, status
                """
            ).first ?? (try adopt(prediction))
        else {
            context.logger.notice("webhook for an unknown prediction", metadata: ["prediction.id": .string(prediction.id)])
            return false
        }
        let id: GenerationID = try row.get("id")
        // Its completion webhook once the job has ended: queued as this returns, so after a copy left for later.
        let context = context
        defer {
            if prediction.isTerminal {
                context.afterResponse { try WebhookDelivery(context).deliverDue(generationID: id, limit: 1) }
            }
        }
        switch prediction.status {
        case "starting":
            return true
        case "processing":
            try context.db.execute(
                """
                UPDATE generations SET status = 'running', started_at = COALESCE(started_at, now()), updated_at = now()
                WHERE id = \(id) AND status = 'queued'
                """)
        case "succeeded":
            let files = ReplicateClient.outputFiles(prediction.output)
            if files.isEmpty {
                try generations.markFailed(id, error: "The provider returned no result; your quota was refunded.")
                return true
            }
            try context.db.execute(
                """
                UPDATE generations SET status = 'running', pending_outputs = \(PostgresJSON(files)),
                       started_at = COALESCE(started_at, now()), updated_at = now()
                WHERE id = \(id) AND status IN \(GenerationStatus.sql(GenerationStatus.open)) AND pending_outputs IS NULL
                """)
            if copyLater {
                context.afterResponse { _ = try copyPending(id) }
            } else {
                try copyPending(id)
            }
        default:
            let status: GenerationStatus = prediction.status == "failed" ? .failed : .canceled
            try generations.markFailed(
                id, error: ReplicateClient.userMessage(for: prediction.error, status: prediction.status), status: status)
            if let maskKey = try context.db.query("SELECT input->>'mask_key' AS mask_key FROM generations WHERE id = \(id)").first?
                .get("mask_key", as: String?.self)
            {
                discard([maskKey])
            }
        }
        return true
    }

    /// Copies a finished job's outputs into media storage and records them. A failed copy is counted and
    /// left for the reconciler; after `maxCopyAttempts` the job fails and is refunded.
    @discardableResult
    public func copyPending(_ generationID: GenerationID) throws -> Bool {
        guard
            let row = try context.db.query(
                """
                SELECT pending_outputs, input->>'mask_key' AS mask_key FROM generations
                WHERE id = \(generationID) AND status IN \(GenerationStatus.sql(GenerationStatus.open)) AND pending_outputs IS NOT NULL
                """
            ).first
        else { return false }
        let files = try row.get("pending_outputs", as: PostgresJSON<[String]>.self).value
        let maskKey: String? = try row.get("mask_key")
        do {
            return try ProviderOutputs(context).record(
                generationID, pending: true,
                outputs: files.map { file in { try ProviderOutputs.download(file, maxBytes: Self.maxOutputBytes) } })
        } catch let error as DependencyUnavailable where error.dependency == .database {
            throw error
        } catch {
            context.logger.error(
                "copying provider output failed", metadata: ["generation.id": .string(generationID.text), "error": .string("\(error)")])
            let attempts =
                try context.db.query(
                    """
                    UPDATE generations SET copy_attempts = copy_attempts + 1, updated_at = now() WHERE id = \(generationID) RETURNING copy_attempts
                    """
                ).first?.get("copy_attempts", as: Int.self) ?? 0
            if attempts >= Self.maxCopyAttempts {
                try generations.markFailed(generationID, error: "The result could not be saved; your quota was refunded. Please try again.")
                discard([maskKey].compactMap { $0 })
            }
            return false
        }
    }

    func discard(_ keys: [String]) {
        for key in keys { try? context.media.delete(key: key) }
    }

    /// The provider input for a task, with style and colour folded into the prompt.
    public func input(
        prompt: String, style: Catalog.Style, colour: Catalog.Colour, ratio: Catalog.AspectRatio, seed: Int64
    ) -> [String: JSONValue] {
        [
            "prompt": .string(Catalog.providerPrompt(prompt, style: style, colour: colour)),
            "aspect_ratio": .string(ratio.id),
            "seed": .number(Double(seed)),
            "output_format": .string("webp"),
            "num_outputs": .number(1),
        ]
    }
}
