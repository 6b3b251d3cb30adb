import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitMedia
import SharedKitRuntime
import SharedKitStores

/// `POST /api/v1/images/transform` (multipart): upscale an image, or repaint its masked part. The source
/// is an upload (kept in the gallery as `uploaded`) or an image already in the gallery (`image_id`).
/// Every check runs before any quota is reserved, so a refused request costs nothing; the budget and the
/// quota are checked before the upload is decoded or stored, so a refused upload leaves nothing behind.
enum Transform {
    static let maxBodyBytes = 10 * 1024 * 1024
    static let maxPixels = 40_000_000

    struct JobInput: Codable, Sendable {
        let mode: String
        let scale: Int?
        let prompt: String?
        let sourceImageId: ImageID
        /// Inpainting through Replicate: the mask in our media storage, until the job ends.
        var maskKey: String? = nil
    }

    static func create(_ request: Request, _ context: Context) throws -> Response {
        let user = try context.authorize(request, budget: \.generateFree).user
        return try Idempotency.run(request, context, userID: user.id) { try transform(request, context, user) }
    }

    static func transform(_ request: Request, _ context: Context, _ user: User) throws -> Response {
        let form = try MultipartForm.parse(request)
        let mode = form.field("mode") ?? ""
        guard mode == "upscale" || mode == "inpaint" else {
            throw HTTPError(.badRequest, code: "invalid_mode", message: "mode must be 'upscale' or 'inpaint'.")
        }
        var scale = 2
        if mode == "upscale", let text = form.field("scale"), !text.isEmpty {
            guard let value = Int(text), value == 2 || value == 4 else {
                throw HTTPError(.badRequest, code: "invalid_scale", message: "scale must be 2 or 4.")
            }
            scale = value
        }
        var prompt: String?
        if mode == "inpaint" {
            prompt = try Catalog.prompt(form.field("prompt") ?? "", what: "what to paint into the masked area")
        }

        let webhookURL = try CompletionWebhooks.url(form.field("webhook_url"), context.config)

        // A request the quota cannot cover is refused before the upload is decoded or stored.
        let task: Generations.Task = mode == "upscale" ? .upscale : .inpaint
        let cost = try Generations.Costs(config: context.config).cost(of: task)
        try QuotaLedger(db: context.db, policy: context.quota, now: context.date()).ensureAvailable(for: user, cost: cost)

        // The source: an upload checked by content, or one of the user's images.
        let upload = form.part("image").flatMap { $0.body.isEmpty ? nil : $0 }
        let source: RGBImage
        var existing: ImageRecord?
        if let upload {
            source = try decodeChecked(upload.body, what: "image")
        } else if let text = form.field("image_id"), !text.isEmpty {
            guard let id = ImageID(text),
                let record = try context.db.query(
                    """
                    SELECT \(ImageRecord.columns) FROM images WHERE id = \(id) AND user_id = \(user.id) AND storage_key IS NOT NULL
                    """
                ).records(ImageRecord.self).first, let key = record.storageKey
            else {
                throw HTTPError(.notFound, code: "not_found", message: "No such image.")
            }
            source = try Imaging.decode(try context.media.read(key: key))
            existing = record
        } else {
            throw HTTPError(
                .badRequest, code: "missing_field", message: "Attach the image to transform as 'image', or name one with 'image_id'.")
        }

        let jobs = GenerationJobs(context)
        let chain = try jobs.chain(for: task)
        let local = chain.first == .local
        var maskPNG: [UInt8]?
        var maskValues: (width: Int, height: Int, values: [UInt8])?
        var result: RGBImage
        if mode == "upscale" {
            guard source.width * scale * source.height * scale <= maxPixels else {
                throw HTTPError(
                    .badRequest, code: "result_too_large",
                    message:
                        "Upscaling \(source.width)×\(source.height) by \(scale) would exceed 40 megapixels; try a smaller scale or image.")
            }
            guard max(source.width, source.height) * scale <= Imaging.webpMaxSide else {
                throw HTTPError(
                    .badRequest, code: "result_too_large",
                    message:
                        "Upscaling \(source.width)×\(source.height) by \(scale) would be wider than \(Imaging.webpMaxSide) pixels, the most a stored image can have; try a smaller scale or image."
                )
            }
            result = source
        } else {
            guard let maskPart = form.part("mask"), !maskPart.body.isEmpty else {
                throw HTTPError(.badRequest, code: "missing_field", message: "Attach the mask (white where to repaint) as 'mask'.")
            }
            try checkHeader(maskPart.body, what: "mask")
            let mask = try Imaging.decodeMask(maskPart.body)
            guard mask.width == source.width, mask.height == source.height else {
                throw HTTPError(
                    .badRequest, code: "mask_size_mismatch",
                    message: "The mask is \(mask.width)×\(mask.height) but the image is \(source.width)×\(source.height); they must match.")
            }
            maskValues = mask
            result = local ? LocalRenderer.inpaint(source, mask: mask.values) : source
        }

        let localJobs = LocalImageJobs(context)
        let sourceRecord = try existing ?? localJobs.storeUpload(userID: user.id, image: source)
        let generations = Generations(context)
        var job = JobInput(mode: mode, scale: mode == "upscale" ? scale : nil, prompt: prompt, sourceImageId: sourceRecord.id)
        if !local, let sourceKey = sourceRecord.storageKey {
            // Replicate fetches the source and the mask from our public media URLs (inline, the mask
            // would come back inside every webhook). flux-fill answers about one megapixel unless asked to
            // match the input (up to 1440×1440); the copy brings the result back to the source's size.
            // OpenAI is sent both in its edit request: the picture as PNG, the mask transparent where to paint.
            var maskURL = ""
            if let maskValues, chain.contains(.replicate) {
                maskPNG = try Imaging.encodeGrey(width: maskValues.width, height: maskValues.height, values: maskValues.values)
            }
            if let maskPNG {
                let maskKey = FileMediaStorage.newKey(extension: "png")
                try context.media.put(maskPNG, key: maskKey, contentType: "image/png")
                job.maskKey = maskKey
                maskURL = context.media.absoluteURL(for: maskKey, publicBaseURL: context.config.publicBaseURL)
            }
            let imageURL = context.media.absoluteURL(for: sourceKey, publicBaseURL: context.config.publicBaseURL)
            let input: [String: JSONValue] =
                mode == "upscale"
                ? ["image": .string(imageURL), "scale": .number(Double(scale))]
                : [
                    "image": .string(imageURL), "mask": .string(maskURL), "megapixels": .string("match_input"),
                    "prompt": .string(prompt ?? ""), "output_format": .string("webp"), "num_outputs": .number(1),
                ]
            var openai: OpenAIJobs.Work?
            if let maskValues, let prompt, chain.contains(.openai) {
                openai = .edit(prompt: prompt, image: try Imaging.encode(source, as: .png, mark: nil), mask: maskValues)
            }
            let upscale = mode == "upscale"
            let localResult: () throws -> RGBImage =
                upscale
                ? { try Imaging.resize(source, scale: Double(scale)) }
                : { LocalRenderer.inpaint(source, mask: maskValues?.values ?? []) }
            // The job's end (or its failure to start anywhere) removes the stored mask.
            do {
                return try jobs.submit(
                    userID: user.id, task: task, input: job, cost: cost, sourceImageID: sourceRecord.id, webhookURL: webhookURL,
                    chain: chain,
                    work: GenerationJobs.Work(
                        replicate: { replicate in (replicate.client.models.model(for: task), input) }, openai: openai, local: localResult))
            } catch let refused as any HTTPErrorConvertible {
                // Refused before the job existed (the quota ran out meanwhile), nothing else removes the
                // mask; when no provider took the job, giving it up removed the mask already (no harm twice).
                if let maskKey = job.maskKey { try? context.media.delete(key: maskKey) }
                throw refused
            }
        }
        let inpainted = result
        let stored = try localJobs.run(
            userID: user.id, task: task, input: job, cost: cost, sourceImageID: sourceRecord.id, webhookURL: webhookURL,
            fromUpload: try ImageKind.comesFromUpload(sourceRecord.id, context.db),
            kind: mode == "upscale" ? .upscaled : .inpainted, prompt: prompt ?? sourceRecord.prompt, style: nil, colour: nil, seed: nil
        ) {
            mode == "upscale" ? try Imaging.resize(source, scale: Double(scale)) : inpainted
        }
        let view = try generations.made(id: stored.generationID, userID: user.id)
        return .json(GenerationAnswer.made(view, image: ImageView(stored.image, storage: context.media)), status: .created)
    }

    /// PNG, JPEG or WebP by content, at most 40 megapixels and 16383 pixels a side (what WebP, the stored
    /// format, can hold) by its header, before any pixel is decoded.
    static func checkHeader(_ bytes: [UInt8], what: String) throws {
        guard let probe = ImageProbe.probe(bytes) else {
            throw HTTPError(
                .unsupportedMediaType, code: "unsupported_image",
                message: "The \(what) must be a PNG, JPEG or WebP image.")
        }
        guard probe.pixels <= maxPixels else {
            throw HTTPError(
                .badRequest, code: "image_too_large",
                message: "The \(what) is \(probe.width)×\(probe.height); images can have at most 40 megapixels.")
        }
        guard max(probe.width, probe.height) <= Imaging.webpMaxSide else {
            throw HTTPError(
                .badRequest, code: "image_too_large",
                message: "The \(what) is \(probe.width)×\(probe.height); images can have at most \(Imaging.webpMaxSide) pixels on a side.")
        }
    }

    static func decodeChecked(_ bytes: [UInt8], what: String) throws -> RGBImage {
        try checkHeader(bytes, what: what)
        do {
            return try Imaging.decode(bytes)
        } catch {
            throw HTTPError(.unsupportedMediaType, code: "unsupported_image", message: "The \(what) could not be read as an image.")
        }
    }
}
