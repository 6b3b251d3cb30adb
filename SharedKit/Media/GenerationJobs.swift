import Logging
public import SharedKit
public import SharedKitCore
import SharedKitHTTP
public import SharedKitRuntime
import SharedKitStores

/// The one flow every generation takes (images, videos, transforms): reserve the quota and record the job,
/// then either hand it to the providers (answered 202 with the generation to follow) or make it with the
/// embedded renderer inside one transaction (answered 201).
///
/// Handed to providers, the job goes down the list `Providers` gives for its task: the first that takes
/// it keeps it (Replicate's webhook completes it; OpenAI's answer carries the image, made after the
/// response because it takes tens of seconds). A provider that fails cools down and the next is tried;
/// when none is left the job fails and is refunded once. The quota is charged once, whoever makes it.
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

    /// What each provider is to be asked for this job (nil: this job cannot go there).
    public struct Work {
        /// Replicate: the model and the model's input.
        public var replicate: ((ReplicateJobs) -> (model: String, input: [String: JSONValue]))?
        /// OpenAI's Images API.
        public var openai: OpenAIJobs.Work?
        /// The embedded renderer, when it closes the list and every provider before it failed.
        public var local: (() throws -> RGBImage)?

        public init(
            replicate: ((ReplicateJobs) -> (model: String, input: [String: JSONValue]))? = nil, openai: OpenAIJobs.Work? = nil,
            local: (() throws -> RGBImage)? = nil
        ) {
            self.replicate = replicate
            self.openai = openai
            self.local = local
        }
    }

    /// The providers for a task, in the order to try them now.
    public func chain(for task: Generations.Task) throws -> [ProviderName] {
        try Providers(context.config).chain(for: task, redis: context.redis, logger: context.logger)
    }

    /// A provider job: recorded as queued with its quota reserved and handed down `chain`; 202 with the
    /// generation and its `Location`. When no provider takes it the job is failed and refunded, and the
    /// answer is 503.
    public func submit<Input: Codable & Sendable>(
        userID: UserID, task: Generations.Task, input: Input, cost: Int, sourceImageID: ImageID? = nil, webhookURL: String? = nil,
        chain: [ProviderName], work: Work
    ) throws -> Response {
        let generationID = try generations.create(
            userID: userID, task: task, provider: chain.first ?? .local, model: nil, input: input, cost: cost, sourceImageID: sourceImageID,
            status: .queued, webhookURL: webhookURL)
        // Queued after the provider's work that follows the response, if any.
        defer { if webhookURL != nil { deliverWebhookSoon(generationID) } }
        try hand(generationID, to: chain[...], work: work, inRequest: true)
        var response = Response.json(GenerationAnswer.queued(try generations.made(id: generationID, userID: userID)), status: .accepted)
        response.setHeader("Location", "/api/v1/generations/\(generationID)")
        return response
    }

    /// Offers the job to each provider of `chain` in turn until one takes it. In the request, OpenAI's
    /// work (and the rest of the list, should it fail) is left for after the response. Throws 503 once
    /// the job was failed and refunded because no provider took it.
    func hand(_ generationID: GenerationID, to chain: ArraySlice<ProviderName>, work: Work, inRequest: Bool) throws {
        let providers = try Providers(context.config)
        let replicate = work.replicate != nil ? ReplicateJobs(context) : nil
        let openai = work.openai != nil ? OpenAIJobs(context) : nil
        // Only the providers this job has work for (and that are configured here): "the last one" below
        // means the last that could take it.
        var rest: ArraySlice<ProviderName> = chain.filter { name in
            switch name {
            case .replicate: replicate != nil
            case .openai: openai != nil
            case .local: work.local != nil
            }
        }
        var lastFailure = "no provider can do this task"
        func failed(_ name: ProviderName, _ reason: String) {
            lastFailure = "\(name.rawValue): \(reason)"
            providers.coolDown(name, reason: reason, redis: context.redis, logger: context.logger)
        }
        while let provider = rest.popFirst() {
            switch provider {
            case .replicate:
                guard let jobs = replicate, let make = work.replicate else { continue }
                let (model, input) = make(jobs)
                guard try generations.assign(generationID, to: .replicate, model: model) else { return }
                do {
                    try jobs.start(generationID: generationID, model: model, input: input)
                    return
                } catch let throttled as ReplicateClient.Throttled {
                    guard !rest.isEmpty else {
                        try jobs.deferStart(generationID: generationID, model: model, input: input)
                        return
                    }
                    failed(.replicate, throttled.description)
                } catch let unavailable as DependencyUnavailable where unavailable.dependency == .provider {
                    failed(.replicate, unavailable.detail)
                }
            case .openai:
                guard let jobs = openai, let job = work.openai else { continue }
                guard try generations.assign(generationID, to: .openai, model: jobs.model(for: job)) else { return }
                if inRequest {
                    let remaining = rest
                    context.afterResponse { try self.hand(generationID, to: [.openai] + remaining, work: work, inRequest: false) }
                    return
                }
                do {
                    try jobs.make(generationID, job)
                    return
                } catch let refused as OpenAIClient.Refused {
                    context.logger.notice(
                        "openai refused the job",
                        metadata: ["generation.id": .string(generationID.text), "error": .string(refused.description)])
                    try giveUp(generationID, message: OpenAIClient.refusalMessage)
                    return
                } catch let unavailable as OpenAIClient.Unavailable {
                    failed(.openai, unavailable.description)
                } catch let rejected as OpenAIClient.Rejected {
                    // This job's own problem (its size, a parameter): the next provider may take it, and
                    // OpenAI stays first for everyone else.
                    lastFailure = "openai: \(rejected.description)"
                }
            case .local:
                guard let make = work.local else { continue }
                guard try generations.assign(generationID, to: .local, model: LocalRenderer.model) else { return }
                do {
                    let image = try make()
                    if try !ProviderOutputs(context).record(
                        generationID, pending: false, outputs: [{ try Imaging.encode(image, as: .png, mark: nil) }])
                    {
                        context.logger.notice(
                            "the job ended before the embedded renderer's image", metadata: ["generation.id": .string(generationID.text)])
                    }
                    return
                } catch let error as DependencyUnavailable where error.dependency == .database {
                    throw error
                } catch {
                    // The last resort failed too: the job ends now, refunded, rather than at its timeout.
                    context.logger.error(
                        "the embedded renderer failed the job",
                        metadata: ["generation.id": .string(generationID.text), "error": .string("\(error)")])
                    try giveUp(generationID, message: "The image could not be made; your quota was refunded. Please try again.")
                    throw error is DependencyUnavailable
                        ? error
                        : HTTPError(
                            .internalServerError, code: "generation_failed",
                            message: "The image could not be made; your quota was refunded.")
                }
            }
        }
        context.logger.error(
            "no provider took the job", metadata: ["generation.id": .string(generationID.text), "error": .string(lastFailure)])
        try giveUp(generationID, message: "The image provider is unavailable right now; your quota was refunded. Please try again.")
        throw HTTPError(
            .serviceUnavailable, code: "provider_unavailable",
            message:
                "No image provider could take this job right now; it was recorded as failed (generation \(generationID)) and your quota refunded. Please try again shortly.",
            headers: [("Retry-After", "5")])
    }

    /// After the response: the job's completion webhook if it has ended by then (later, maintenance-cron).
    func deliverWebhookSoon(_ generationID: GenerationID) {
        let context = context
        context.afterResponse { try WebhookDelivery(context).deliverDue(generationID: generationID, limit: 1) }
    }

    /// Fails the job (refunding it once) and removes its stored mask.
    public func giveUp(_ generationID: GenerationID, message: String) throws {
        try generations.markFailed(generationID, error: message)
        if let maskKey = try context.db.query("SELECT input->>'mask_key' AS mask_key FROM generations WHERE id = \(generationID)").first?
            .get("mask_key", as: String?.self)
        {
            try? context.media.delete(key: maskKey)
        }
    }

    /// An embedded job as one transaction: `make` renders, stores its files (naming each key in `written`
    /// as soon as it exists) and records the output, returning it. When `make` fails the job is failed and
    /// refunded (with `failure` as its message) and the files removed; a storage outage is answered 503,
    /// anything else 500 `generation_failed`.
    public func runLocally<Input: Codable & Sendable, Output>(
        userID: UserID, task: Generations.Task, input: Input, cost: Int, sourceImageID: ImageID? = nil, webhookURL: String? = nil,
        failure: String, make: (_ generationID: GenerationID, _ written: inout [String]) throws -> Output
    ) throws -> (generationID: GenerationID, output: Output) {
        let storage = context.media
        var written: [String] = []
        var committedID: GenerationID?
        do {
            let outcome: Result<(GenerationID, Output), any Error> = try context.db.transaction {
                let generationID = try generations.create(
                    userID: userID, task: task, provider: .local, model: LocalRenderer.model, input: input, cost: cost,
                    sourceImageID: sourceImageID, webhookURL: webhookURL)
                committedID = generationID
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
                        "local job failed", metadata: ["generation.id": .string(generationID.text), "error": .string("\(error)")])
                    let storageDown = error is DependencyUnavailable
                    let what = task == .video ? "video" : "image"
                    try generations.markFailed(
                        generationID,
                        error: storageDown
                            ? "The \(what) could not be saved; your quota was refunded. Please try again." : failure)
                    return .failure(storageDown ? error : HTTPError(.internalServerError, code: "generation_failed", message: failure))
                }
            }
            // Succeeded or failed, the job ended: its webhook goes after the response.
            if webhookURL != nil, let committedID { deliverWebhookSoon(committedID) }
            let (generationID, output) = try outcome.get()
            return (generationID, output)
        } catch let error as DependencyUnavailable where error.dependency == .database {
            for key in written { try? storage.delete(key: key) }
            throw error
        }
    }
}
