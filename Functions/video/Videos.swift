import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitMedia
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Short videos, for premium users. The embedded provider makes a looping animation (animated WebP,
/// which every current browser plays in an <img>) with a poster frame.
enum Videos {
    static let frameCount = 24
    static let frameDelayMs = 125
    static let ratios = ["16:9", "9:16", "1:1"]

    /// What the configured video model accepts: its aspect ratios and whether it takes a seed. The
    /// embedded provider does all three shapes and seeds. Replicate's models differ (their inputs on
    /// replicate.com): minimax/video-01 takes only a prompt (16:9 output, no seed), wan-2.2-t2v-fast takes
    /// an aspect ratio (16:9 or 9:16) and a seed; a model not known here is sent the prompt alone.
    struct Capabilities: JSONWritable {
        let model: String
        let aspectRatios: [String]
        let seed: Bool
        /// The model's own input names for the ratio and the seed (nil: not sent).
        let ratioInput: String?
        let seedInput: String?

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("aspect_ratios", aspectRatios)
                o.field("model", model)
                o.field("seed", seed)
            }
        }

        static func configured(_ context: Context) -> Capabilities {
            // Videos go to Replicate when it heads their provider list, else to the embedded renderer.
            let first = (try? Providers(context.config))?.order.first { $0.can(.video) }
            guard first == .replicate, let client = ReplicateClient(context.config) else {
                return Capabilities(model: LocalRenderer.model, aspectRatios: ratios, seed: true, ratioInput: nil, seedInput: nil)
            }
            let model = client.models.video
            switch model.split(separator: ":").first.map(String.init) ?? model {
            case "wan-video/wan-2.2-t2v-fast":
                return Capabilities(
                    model: model, aspectRatios: ["16:9", "9:16"], seed: true, ratioInput: "aspect_ratio", seedInput: "seed")
            default:
                return Capabilities(model: model, aspectRatios: ["16:9"], seed: false, ratioInput: nil, seedInput: nil)
            }
        }
    }

    /// GET /api/v1/videos/options: what a video request may ask of the configured model.
    static func options(_ request: Request, _ context: Context) throws -> Response {
        _ = try context.authorize(request, budget: \.read)
        return .json(Capabilities.configured(context))
    }

    /// The stored input of a video job (no seed when the model takes none).
    struct VideoJob: Codable, Sendable {
        let prompt: String
        let style: String
        let colour: String
        let aspectRatio: String
        let seed: Int64?
    }

    static func create(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.generateFree).user
        return try Idempotency.run(request, context, userID: user.id) { try makeVideo(request, context, user) }
    }

    static func makeVideo(_ request: Request, _ context: Context, _ user: User) throws -> Response {
        guard user.isPremium(at: context.date()) else {
            throw HTTPError(
                .forbidden, code: "premium_required",
                message: "Video is part of Atelier Premium; subscribe from your account page to make videos.")
        }
        let capabilities = Capabilities.configured(context)
        let body = try request.decode(GenerationRequest.self)
        if body.seed != nil, !capabilities.seed {
            throw HTTPError(
                .badRequest, code: "invalid_seed",
                message: "The video model here (\(capabilities.model)) does not take a seed; leave seed out.")
        }
        if let ratio = body.aspectRatio, !capabilities.aspectRatios.contains(ratio) {
            throw HTTPError(
                .badRequest, code: "invalid_aspect_ratio",
                message: "The video model here (\(capabilities.model)) makes \(capabilities.aspectRatios.joined(separator: " or ")) videos."
            )
        }
        let asked = try body.validated(what: "video", ratios: capabilities.aspectRatios, defaultRatio: "16:9")
        let (prompt, style, colour, ratio, seed, job) = (asked.prompt, asked.style, asked.colour, asked.ratio, asked.seed, asked.job)
        let generations = Generations(context)
        let jobs = GenerationJobs(context)
        let cost = try Generations.Costs(config: context.config).cost(of: .video)
        let webhookURL = try asked.webhookURL(context.config)
        let chain = try jobs.chain(for: .video)
        if chain.first != .local {
            let stored = VideoJob(
                prompt: prompt, style: style.id, colour: colour.id, aspectRatio: ratio.id,
                seed: capabilities.seed ? seed : nil)
            var input: [String: JSONValue] = ["prompt": .string(Catalog.providerPrompt(prompt, style: style, colour: colour))]
            if capabilities.model.hasPrefix("minimax/") { input["prompt_optimizer"] = .bool(true) }
            if let name = capabilities.ratioInput { input[name] = .string(ratio.id) }
            if let name = capabilities.seedInput { input[name] = .number(Double(seed)) }
            return try jobs.submit(
                userID: user.id, task: .video, input: stored, cost: cost, webhookURL: webhookURL, chain: chain,
                work: GenerationJobs.Work(replicate: { replicate in (replicate.client.models.video, input) }))
        }
        let storage = context.media
        let done = try jobs.runLocally(
            userID: user.id, task: .video, input: job, cost: cost, webhookURL: webhookURL,
            failure: "The video could not be made; your quota was refunded."
        ) { generationID, written -> VideoRecord in
            let frames = LocalRenderer(longSide: 480).frames(
                prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed, count: frameCount)
            let mark = Provenance.of(task: .video, model: LocalRenderer.model, fromUpload: false, at: context.now())
            let animation = try Imaging.animatedWebP(frames, delayMs: frameDelayMs, mark: mark)
            let poster = try Imaging.encode(frames[0], as: .webp, quality: 85, mark: mark)
            let key = FileMediaStorage.newKey(extension: "webp")
            let posterKey = FileMediaStorage.newKey(extension: "webp")
            try storage.put(animation, key: key, contentType: "image/webp")
            written.append(key)
            try storage.put(poster, key: posterKey, contentType: "image/webp")
            written.append(posterKey)
            return try context.db.query(
                """
                INSERT INTO videos (user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds, model, provider,
                                    seed, status, generation_id, completed_at)
                VALUES (\(user.id), \(key), \(posterKey), \(prompt), \(style.id), \(colour.id), \(frames[0].width), \(frames[0].height),
                        \(Double(frameCount * frameDelayMs) / 1000), \(mark.model), 'local', \(seed), 'succeeded', \(generationID), now())
                RETURNING \(VideoRecord.columns)
                """
            ).records(VideoRecord.self)[0]
        }
        let view = try generations.made(id: done.generationID, userID: user.id)
        var response = Response.json(GenerationAnswer.made(view, video: VideoView(done.output, storage: storage)), status: .created)
        response.setHeader("Location", "/api/v1/videos/\(done.output.id)")
        return response
    }

    static func list(_ request: Request, _ context: Context) throws -> Response {
        var limit = 0
        let read = try context.readRows(request, .owner(\.read)) { userID in
            limit = try PageCursor.limit(request)
            var filter = try PromptSearch.filter(request.query("q"))
            if let cursor = try PageCursor.parse(request.query("cursor")) {
                filter.append(" AND (created_at, id) < (\(cursor.createdAt), \(cursor.id)::uuid)")
            }
            return """
                SELECT \(VideoRecord.columns) FROM videos WHERE user_id = \(userID)::uuid\(filter)
                ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
                """
        }
        let page = read.rows.prefix(limit)
        let next = read.rows.count > limit ? try page.last.map { try PageCursor(row: $0, from: read.start, VideoRecord.self) } : nil
        return .json(Page(items: VideoRows(page, from: read.start, storage: context.media), nextCursor: next?.token))
    }

    static func show(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        return .json(VideoView(try owned(try request.id("id"), by: user, context), storage: context.media))
    }

    static func delete(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let record = try owned(try request.id("id"), by: user, context)
        try context.db.execute("DELETE FROM videos WHERE id = \(record.id) AND user_id = \(user.id)")
        for key in [record.storageKey, record.posterKey].compactMap({ $0 }) { try? context.media.delete(key: key) }
        return .empty()
    }

    static func owned(_ id: VideoID?, by user: User, _ context: Context) throws -> VideoRecord {
        guard let id,
            let record = try context.db.query(
                """
                SELECT \(VideoRecord.columns) FROM videos WHERE id = \(id) AND user_id = \(user.id)
                """
            ).records(VideoRecord.self).first
        else {
            throw HTTPError(.notFound, code: "not_found", message: "No such video.")
        }
        return record
    }
}
