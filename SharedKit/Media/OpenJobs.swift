public import SharedKit
public import SharedKitCore
import SharedKitHTTP
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Moving an open generation forward when its webhook never came: what maintenance-cron does for every
/// job that waited too long, and what an admin does for one job from the stuck-job view.
public struct OpenJobs {
    /// How long a job may stay open before it is stopped and refunded.
    public struct Timeouts: Sendable {
        public let image: Int
        public let video: Int

        public init(_ config: Config) throws {
            image = try config.integer("GENERATION_TIMEOUT_SECONDS", default: 900, range: 0...86_400)
            video = try config.integer("VIDEO_TIMEOUT_SECONDS", default: 3600, range: 0...86_400)
        }

        public func seconds(for task: String) -> Int { task == "video" ? video : image }
    }

    /// What reconciling one job did.
    public enum Step: String, Sendable {
        /// Finished outputs were copied into media storage (the job succeeded).
        case copied
        /// Copying finished outputs failed again (counted; the job fails after a few).
        case copyFailed = "copy_failed"
        /// The provider was asked and its answer applied.
        case checked
        /// A prediction whose create answer was lost was found and taken.
        case adopted
        /// No prediction names the job (yet): it waits for its timeout.
        case notFound = "not_found"
        /// A job the provider throttled at creation was started.
        case started
        /// The provider still throttles: the job stays deferred.
        case throttled
        /// The job was past its timeout: canceled at the provider, failed and refunded.
        case timedOut = "timed_out"
        /// Nothing to do: the job is not open, or the embedded provider still has it.
        case none
    }

    let context: Context
    /// nil when Replicate is not configured (the embedded provider finishes inside the request).
    public let replicate: ReplicateJobs?

    public init(_ context: Context) {
        self.context = context
        self.replicate = ReplicateJobs(context)
    }

    /// The maintenance step for one open Replicate job: copy pending outputs, ask the provider about a job
    /// it knows, start a deferred one, or look for the prediction of a lost create answer.
    public func reconcile(_ generationID: GenerationID) throws -> Step {
        guard let jobs = replicate,
            let row = try context.db.query(
                """
                SELECT provider_id, pending_outputs IS NOT NULL AS pending, deferred_start::text AS deferred_start FROM generations
                WHERE id = \(generationID) AND provider = 'replicate' AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                """
            ).first
        else { return .none }
        if try row.get("pending") {
            return try jobs.copyPending(generationID) ? .copied : .copyFailed
        }
        if let providerID: String = try row.get("provider_id") {
            try jobs.apply(try jobs.client.get(providerID))
            return .checked
        }
        if let text: String = try row.get("deferred_start") {
            guard let deferred = ReplicateJobs.DeferredStart(json: text) else { return .none }
            return try jobs.startDeferred(generationID: generationID, deferred) ? .started : .throttled
        }
        if let prediction = try jobs.client.find(reference: generationID), try jobs.apply(prediction) {
            return .adopted
        }
        return .notFound
    }

    /// Cancels the job at the provider (best effort), fails it and refunds it once; its inpainting mask goes.
    public func timeOut(_ generationID: GenerationID, providerID: String?, maskKey: String?) throws {
        if let jobs = replicate, let providerID { _ = try? jobs.client.cancel(providerID) }
        try Generations(context).markFailed(
            generationID, error: "The job took too long and was stopped; your quota was refunded.", status: .failed)
        if let maskKey { try? context.media.delete(key: maskKey) }
    }

    /// One job by hand: reconcile it, then stop it if it is still open past its timeout.
    public func settle(_ generationID: GenerationID, timeouts: Timeouts) throws -> Step {
        let step = try reconcile(generationID)
        guard
            let row = try context.db.query(
                """
                SELECT provider_id, input->>'mask_key' AS mask_key, task,
                       created_at < now() - make_interval(secs => CASE WHEN task = 'video' THEN \(timeouts.video)::integer ELSE \(timeouts.image)::integer END) AS overdue
                FROM generations WHERE id = \(generationID) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                """
            ).first, try row.get("overdue", as: Bool.self)
        else { return step }
        try timeOut(generationID, providerID: try row.get("provider_id"), maskKey: try row.get("mask_key"))
        return .timedOut
    }
}
