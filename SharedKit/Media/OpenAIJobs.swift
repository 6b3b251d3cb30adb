import Logging
public import SharedKit
public import SharedKitCore
public import SharedKitHTTP

/// Generations made by OpenAI's Images API (or a server speaking it): the answer carries the image, which
/// is stored and recorded at once (`ProviderOutputs`), or the job fails over to the next provider.
public struct OpenAIJobs {
    /// What to ask: a new image, or a repaint of the masked part of one.
    public enum Work: Sendable {
        case generate(prompt: String, width: Int, height: Int)
        /// `image`: PNG; `mask`: the one-band mask (white where to repaint) of the same size.
        case edit(prompt: String, image: [UInt8], mask: (width: Int, height: Int, values: [UInt8]))
    }

    let context: Context
    public let client: OpenAIClient

    public init?(_ context: Context) {
        guard let client = OpenAIClient(context.config) else { return nil }
        self.context = context
        self.client = client
    }

    public func model(for work: Work) -> String {
        switch work {
        case .generate: client.models.image
        case .edit: client.models.inpaint
        }
    }

    /// Asks for the image and records it. Throws `OpenAIClient.Unavailable` (OpenAI cools down and the
    /// next provider is tried), `OpenAIClient.Rejected` (this job's request: the next provider is tried) or
    /// `OpenAIClient.Refused` (the safety system said no); an image our storage cannot take fails the job.
    /// The job stays queued until the image is recorded: should OpenAI fail, the next provider (Replicate
    /// defers a throttled start only for a queued job) takes it as any new job.
    public func make(_ generationID: GenerationID, _ work: Work) throws {
        let model = model(for: work)
        let outputs: [OpenAIClient.Output]
        switch work {
        case .generate(let prompt, let width, let height):
            outputs = try client.generate(model: model, prompt: prompt, size: OpenAIClient.size(model: model, width: width, height: height))
        case .edit(let prompt, let image, let mask):
            guard image.count <= OpenAIClient.maxUploadBytes(model: model) else {
                throw OpenAIClient.Rejected(description: "the image is \(image.count) bytes, more than \(model) takes")
            }
            let maskPNG = try Imaging.encodeTransparencyMask(width: mask.width, height: mask.height, values: mask.values)
            outputs = try client.edit(model: model, prompt: prompt, image: image, mask: maskPNG)
        }
        do {
            let recorded = try ProviderOutputs(context).record(
                generationID, pending: false,
                outputs: outputs.map { output in
                    {
                        switch output {
                        case .bytes(let bytes): return bytes
                        case .url(let url): return try ProviderOutputs.download(url, maxBytes: ReplicateJobs.maxOutputBytes)
                        }
                    }
                })
            if !recorded {
                context.logger.notice("the job ended before OpenAI's image came", metadata: ["generation.id": .string(generationID.text)])
            }
        } catch let error as DependencyUnavailable where error.dependency == .database {
            throw error
        } catch let error as DependencyUnavailable {
            // Our storage, not the provider: no other provider would do better.
            context.logger.error(
                "storing openai's image failed", metadata: ["generation.id": .string(generationID.text), "error": .string("\(error)")])
            try Generations(context).markFailed(
                generationID, error: "The image could not be saved; your quota was refunded. Please try again.")
        } catch {
            throw OpenAIClient.Unavailable(description: "unusable image: \(error)")
        }
    }
}
