import SharedKit
import SharedKitHTTP
import SharedKitMedia
import SharedKitRuntime
import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum Images {
    /// Reserves quota and makes the image. The embedded provider finishes at once: 201 with the image.
    static func create(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.generateFree).user
        return try Idempotency.run(request, context, userID: user.id) { try makeImage(request, context, user) }
    }

    static func makeImage(_ request: Request, _ context: Context, _ user: User) throws -> Response {
        let asked = try request.decode(GenerationRequest.self).validated(what: "image")
        let (prompt, style, colour, ratio, seed, job) = (asked.prompt, asked.style, asked.colour, asked.ratio, asked.seed, asked.job)
        let generations = Generations(context)
        let cost = try Generations.Costs(config: context.config).cost(of: .image)
        let webhookURL = try asked.webhookURL(context.config)
        let jobs = GenerationJobs(context)
        let chain = try jobs.chain(for: .image)
        if chain.first != .local {
            // Provider jobs: answered at once with the generation to follow.
            let providerPrompt = Catalog.providerPrompt(prompt, style: style, colour: colour)
            return try jobs.submit(
                userID: user.id, task: .image, input: job, cost: cost, webhookURL: webhookURL, chain: chain,
                work: GenerationJobs.Work(
                    replicate: { replicate in
                        (
                            replicate.client.models.image,
                            replicate.input(prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed)
                        )
                    },
                    openai: .generate(prompt: providerPrompt, width: ratio.width, height: ratio.height),
                    local: { LocalRenderer().render(prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed) }))
        }
        let stored = try LocalImageJobs(context).run(
            userID: user.id, task: .image, input: job, cost: cost, sourceImageID: nil, webhookURL: webhookURL, kind: .generated,
            prompt: prompt,
            style: style.id, colour: colour.id, seed: seed
        ) {
            LocalRenderer().render(prompt: prompt, style: style, colour: colour, ratio: ratio, seed: seed)
        }
        let view = try generations.made(id: stored.generationID, userID: user.id)
        var response = Response.json(GenerationAnswer.made(view, image: ImageView(stored.image, storage: context.media)), status: .created)
        response.setHeader("Location", "/api/v1/images/\(stored.image.id)")
        return response
    }

    /// Newest first, `limit` per page (24 by default, at most 100), optionally one kind.
    static func list(_ request: Request, _ context: Context) throws -> Response {
        var limit = 0
        let read = try context.readRows(request, .owner(\.read)) { userID in
            limit = try PageCursor.limit(request)
            var filter: SQLQuery = ""
            if let kind = request.query("kind") {
                guard ImageKind(rawValue: kind) != nil else {
                    throw HTTPError(.badRequest, code: "invalid_kind", message: "kind must be generated, upscaled, inpainted or uploaded.")
                }
                filter = " AND kind = \(kind)"
            }
            filter.append(try PromptSearch.filter(request.query("q")))
            if let cursor = try PageCursor.parse(request.query("cursor")) {
                filter.append(" AND (created_at, id) < (\(cursor.createdAt), \(cursor.id)::uuid)")
            }
            return """
                SELECT \(ImageRecord.columns) FROM images
                WHERE user_id = \(userID)::uuid\(filter)
                ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)
                """
        }
        let page = read.rows.prefix(limit)
        let next = read.rows.count > limit ? try page.last.map { try PageCursor(row: $0, from: read.start, ImageRecord.self) } : nil
        return .json(Page(items: ImageRows(page, from: read.start, storage: context.media), nextCursor: next?.token))
    }

    static func show(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        return .json(ImageView(try owned(try request.id("id"), by: user, context), storage: context.media))
    }

    /// Removes the row and its files.
    static func delete(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.read).user
        let record = try owned(try request.id("id"), by: user, context)
        try context.db.execute("DELETE FROM images WHERE id = \(record.id) AND user_id = \(user.id)")
        for key in [record.storageKey, record.thumbnailKey].compactMap({ $0 }) {
            try? context.media.delete(key: key)
        }
        return .empty()
    }

    static func generation(_ request: Request, _ context: Context) throws -> Response {
        let id: GenerationID? = try request.id("id")
        let found = try context.read(request, .owner(\.read), Generations.View.self) { userID in
            guard let id else { throw notFound }
            return Generations.viewQuery(id: id, userID: userID)
        }
        guard let view = found.rows.first else { throw notFound }
        return .json(view)
    }

    /// Another user's image is "not found", never "forbidden": ids reveal nothing.
    static func owned(_ id: ImageID?, by user: User, _ context: Context) throws -> ImageRecord {
        guard let id,
            let record = try context.db.query(
                """
                SELECT \(ImageRecord.columns) FROM images WHERE id = \(id) AND user_id = \(user.id)
                """
            ).records(ImageRecord.self).first
        else { throw notFound }
        return record
    }

    static let notFound = HTTPError(.notFound, code: "not_found", message: "No such image.")
}
