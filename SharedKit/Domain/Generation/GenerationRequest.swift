public import SharedKitCore
import SharedKitRuntime

/// What `POST /images` and `POST /videos` ask for, and its checked form: the one place the prompt,
/// style, colour, aspect ratio and seed rules live.
public struct GenerationRequest: Decodable, Sendable {
    public let prompt: String
    public let style: String?
    public let colour: String?
    public let aspectRatio: String?
    public let seed: Int64?
    /// Where to POST the generation when it ends (`CompletionWebhooks`).
    public let webhookUrl: String?

    /// The request checked against the catalog; a missing seed is drawn at random.
    public func validated(what: String, ratios allowed: [String]? = nil, defaultRatio: String = "1:1") throws -> ValidatedGeneration {
        let prompt = try Catalog.prompt(self.prompt, what: what)
        let style = try Catalog.style(style)
        let colour = try Catalog.colour(colour)
        let ratioID = aspectRatio ?? defaultRatio
        if let allowed, !allowed.contains(ratioID) {
            throw HTTPError(.badRequest, code: "invalid_aspect_ratio", message: "A \(what) can be \(allowed.joined(separator: ", ")).")
        }
        let ratio = try Catalog.aspectRatio(ratioID)
        if let seed, !(0...4_294_967_295).contains(seed) {
            throw HTTPError(.badRequest, code: "invalid_seed", message: "seed must be a whole number from 0 to 4294967295.")
        }
        return ValidatedGeneration(
            prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed ?? Int64(Random.uniform(UInt32.max)),
            webhookUrl: webhookUrl)
    }
}

public struct ValidatedGeneration: Sendable {
    public let prompt: String
    public let style: Catalog.Style
    public let colour: Catalog.Colour
    public let ratio: Catalog.AspectRatio
    public let seed: Int64
    let webhookUrl: String?

    /// The completion webhook's URL, checked (nil when none was given).
    public func webhookURL(_ config: Config) throws -> String? {
        try CompletionWebhooks.url(webhookUrl, config)
    }

    /// What the generation row keeps as its input.
    public var job: GenerationJob {
        GenerationJob(prompt: prompt, style: style.id, colour: colour.id, aspectRatio: ratio.id, seed: seed)
    }
}

public struct GenerationJob: Codable, Sendable {
    public let prompt: String
    public let style: String
    public let colour: String
    public let aspectRatio: String
    public let seed: Int64
}
