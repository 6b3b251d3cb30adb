#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import SharedKit
import SharedKitHTTP
import SharedKitMedia

/// Short videos, for premium users. The embedded provider makes a looping animation (animated WebP,
/// which every current browser plays in an <img>) with a poster frame.
enum Videos {
    static let frameCount = 24
    static let frameDelayMs = 125
    static let ratios = ["16:9", "9:16", "1:1"]

    static func create(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.generateFree).user
        return try Idempotency.run(request, context, userID: user.id) { try makeVideo(request, context, user) }
    }

    static func makeVideo(_ request: Request, _ context: Context, _ user: User) throws -> Response {
        guard user.isPremium(at: Date()) else {
            throw HTTPError(.forbidden, code: "premium_required",
                            message: "Video is part of Atelier Premium; subscribe from your account page to make videos.")
        }
        let asked = try request.decode(GenerationRequest.self).validated(what: "video", ratios: ratios, defaultRatio: "16:9")
        let (prompt, style, colour, ratio, seed, job) = (asked.prompt, asked.style, asked.colour, asked.ratio, asked.seed, asked.job)
        let generations = Generations(context)
        let cost = try Generations.Costs(config: context.config).cost(of: .video)
        if let replicate = ReplicateJobs(context) {
            let generationID = try generations.create(userID: user.id, task: .video, provider: "replicate", input: job, cost: cost, status: "queued")
            try replicate.start(generationID: generationID, model: replicate.client.models.video, input: [
                "prompt": .string(Catalog.providerPrompt(prompt, style: style, colour: colour)),
                "prompt_optimizer": .bool(true),
            ])
            var response = Response.json(GenerationAnswer.queued(try generations.made(id: generationID, userID: user.id)), status: .accepted)
            response.setHeader("Location", "/api/v1/generations/\(generationID)")
            return response
        }
        // One transaction for the whole job, as for images (LocalImageJobs.run): a failure to make or store
        // the video is committed as failed and refunded; losing PostgreSQL midway commits nothing.
        let storage = context.media
        var keys: [String] = []
        let outcome: Result<(String, VideoRecord), any Error>
        do {
            outcome = try context.db.transaction {
                let generationID = try generations.create(userID: user.id, task: .video, provider: "local", input: job, cost: cost)
                do {
                    let frames = LocalRenderer(longSide: 480).frames(prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed, count: frameCount)
                    let animation = try Imaging.animatedWebP(frames, delayMs: frameDelayMs)
                    let poster = try Imaging.encode(frames[0], as: .webp, quality: 85)
                    let key = FileMediaStorage.newKey(extension: "webp")
                    let posterKey = FileMediaStorage.newKey(extension: "webp")
                    try storage.put(animation, key: key, contentType: "image/webp")
                    keys.append(key)
                    try storage.put(poster, key: posterKey, contentType: "image/webp")
                    keys.append(posterKey)
                    let record = try context.db.transaction {
                        let row = try context.db.query("""
                            INSERT INTO videos (user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds, model, seed,
                                                status, generation_id, completed_at)
                            VALUES (\(user.id), \(key), \(posterKey), \(prompt), \(style.id), \(colour.id), \(frames[0].width), \(frames[0].height),
                                    \(Double(frameCount * frameDelayMs) / 1000), 'atelier-local', \(seed), 'succeeded', \(generationID), now())
                            RETURNING \(VideoRecord.columns)
                            """)
                        try generations.markSucceeded(generationID)
                        return try row.records(VideoRecord.self)[0]
                    }
                    return .success((generationID, record))
                } catch let error as DependencyUnavailable where error.dependency == .database {
                    throw error
                } catch {
                    for key in keys { try? storage.delete(key: key) }
                    keys = []
                    context.logger.error("video job failed", metadata: ["generation.id": .string(generationID), "error": .string("\(error)")])
                    try generations.markFailed(generationID, error: "The video could not be made; your quota was refunded.")
                    return .failure(error is DependencyUnavailable ? error
                        : HTTPError(.internalServerError, code: "generation_failed", message: "The video could not be made; your quota was refunded."))
                }
            }
        } catch {
            for key in keys { try? storage.delete(key: key) }
            throw error
        }
        let (generationID, record) = try outcome.get()
        let view = try generations.made(id: generationID, userID: user.id)
        var response = Response.json(GenerationAnswer.made(view, video: VideoView(record, storage: storage)), status: .created)
        response.setHeader("Location", "/api/v1/videos/\(record.id)")
        return response
    }

    static func list(_ request: Request, _ context: Context) throws -> Response {
        var limit = 0
        let read = try context.readRows(request, .owner(\.read)) { userID in
            limit = try PageCursor.limit(request)
            var filter: SQLQuery = ""
            if let cursor = try PageCursor.parse(request.query("cursor")) {
                filter = " AND (created_at, id) < (\(cursor.createdAt), \(cursor.id)::uuid)"
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
        return .json(VideoView(try owned(try request.parameter("id"), by: user, context), storage: context.media))
    }

    static func delete(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let record = try owned(try request.parameter("id"), by: user, context)
        try context.db.execute("DELETE FROM videos WHERE id = \(record.id) AND user_id = \(user.id)")
        for key in [record.storageKey, record.posterKey].compactMap({ $0 }) { try? context.media.delete(key: key) }
        return .empty()
    }

    static func owned(_ id: String, by user: User, _ context: Context) throws -> VideoRecord {
        guard UUIDText.isValid(id), let record = try context.db.query("""
            SELECT \(VideoRecord.columns) FROM videos WHERE id = \(id) AND user_id = \(user.id)
            """).records(VideoRecord.self).first else {
            throw HTTPError(.notFound, code: "not_found", message: "No such video.")
        }
        return record
    }
}
