import Logging
public import SharedKit

/// The one flow every generation takes (images, videos, transforms): reserve the quota and record the job,
/// then either hand it to the provider (answered 202 with the generation to follow, completed by the
/// provider's webhook) or make it with the embedded renderer inside one transaction (answered 201).
///
/// An embedded job that fails to make or store its output is committed as failed and refunded; if
/// PostgreSQL itself goes away midway nothing was committed at all (no charge, no job) and the files
/// written are removed, so "nothing was changed" in the 503 is true.
public struct GenerationJobs {
    let context: Context
    let generations: Generations

    public init(_ context: Context) {
        self.context = context
        self.generations = Generations(context)
    }

    /// A provider job: recorded as queued with its quota reserved, then `start`ed with its generation id;
    /// 202 with the generation and its `Location`. A start that throws leaves the job to the reconciler
    /// (or refunds it, as `ReplicateJobs.start` decides) and the error is the answer.
    public func submitToProvider<Input: Codable & Sendable>(
        userID: String, task: Generations.Task, input: Input, cost: Int, sourceImageID: String? = nil,
        start: (_ generationID: String) throws -> Void
    ) throws -> Response {
        let generationID = try generations.create(
            userID: userID, task: task, provider: "replicate", input: input, cost: cost, sourceImageID: sourceImageID, status: .queued)
        try start(generationID)
        var response = Response.json(GenerationAnswer.queued(try generations.made(id: generationID, userID: userID)), status: .accepted)
        response.setHeader("Location", "/api/v1/generations/\(generationID)")
        return response
    }

    /// An embedded job as one transaction: `make` renders, stores its files (naming each key in `written`
    /// as soon as it exists) and records the output, returning it. When `make` fails the job is failed and
    /// refunded (with `failure` as its message) and the files removed; a storage outage is answered 503,
    /// anything else 500 `generation_failed`.
    public func runLocally<Input: Codable & Sendable, Output>(
        userID: String, task: Generations.Task, input: Input, cost: Int, sourceImageID: String? = nil, failure: String,
        make: (_ generationID: String, _ written: inout [String]) throws -> Output
    ) throws -> (generationID: String, output: Output) {
        let storage = context.media
        var written: [String] = []
        do {
            let outcome: Result<(String, Output), any Error> = try context.db.transaction {
                let generationID = try generations.create(
                    userID: userID, task: task, provider: "local", input: input, cost: cost, sourceImageID: sourceImageID)
                do {
                    // In a savepoint: an SQL error while recording the output rolls back to here, so the job
                    // can still be failed and refunded in this transaction.
                    let output = try context.db.transaction { () -> Output in
                        let output = try make(generationID, &written)
                        try generations.markSucceeded(generationID)
                        return output
                    }
                    return .success((generationID, output))
                } catch let error as DependencyUnavailable where error.dependency == .database {
                    throw error
                } catch {
                    for key in written { try? storage.delete(key: key) }
                    written = []
                    context.logger.error(
                        "local job failed", metadata: ["generation.id": .string(generationID), "error": .string("\(error)")])
                    let storageDown = error is DependencyUnavailable
                    let what = task == .video ? "video" : "image"
                    try generations.markFailed(
                        generationID,
                        error: storageDown
                            ? "The \(what) could not be saved; your quota was refunded. Please try again." : failure)
                    return .failure(storageDown ? error : HTTPError(.internalServerError, code: "generation_failed", message: failure))
                }
            }
            let (generationID, output) = try outcome.get()
            return (generationID, output)
        } catch let error as DependencyUnavailable where error.dependency == .database {
            for key in written { try? storage.delete(key: key) }
            throw error
        }
    }
}
