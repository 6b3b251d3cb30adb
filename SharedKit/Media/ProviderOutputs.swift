import Logging
public import SharedKit
public import SharedKitCore
import SharedKitHTTP
import SharedKitStores

/// What a provider made, brought into our own storage and recorded: each output is fetched, checked,
/// marked as AI-made (with the model that made it) and stored with its thumbnail; then, in one
/// transaction, the job is claimed as succeeded (only while it is still open) and its images or video
/// recorded with the provider and model. Used for Replicate's outputs (fetched from its URLs), OpenAI's
/// (base64 in the answer) and the embedded renderer's when it closes the provider list.
public struct ProviderOutputs {
    let context: Context

    public init(_ context: Context) {
        self.context = context
    }

    /// One output's bytes (a download, or bytes already here).
    public typealias Fetch = () throws -> [UInt8]

    /// Stores and records the outputs of the open job `generationID`. With `pending`, the claim also
    /// requires the outputs to be recorded as pending (Replicate's copy, which the reconciler may retry).
    /// True when this call ended the job; false when it was no longer open (what was stored is removed).
    /// A fetch or store that fails removes what was stored and throws.
    public func record(_ generationID: GenerationID, pending: Bool, outputs: [Fetch]) throws -> Bool {
        guard
            let row = try context.db.query(
                """
                SELECT user_id, task, input, source_image_id, provider, model FROM generations
                WHERE id = \(generationID) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                """
            ).first
        else { return false }
        let userID: String = try row.get("user_id")
        let task = Generations.Task(rawValue: try row.get("task")) ?? .image
        let job = try row.get("input", as: PostgresJSON<ReplicateJobs.StoredJob>.self).value
        let sourceImageID: ImageID? = try row.get("source_image_id")
        let provider: String = try row.get("provider")
        // Jobs started before providers recorded their model made it with the configured one.
        let model =
            try row.get("model", as: String?.self)
            ?? (provider == "replicate" ? ReplicateClient(context.config)?.models.model(for: task) : nil) ?? LocalRenderer.model
        let storage = context.media
        var sourceSize: (width: Int, height: Int)?
        var fromUpload = false
        if let sourceImageID, let source = try context.db.query("SELECT width, height FROM images WHERE id = \(sourceImageID)").first {
            fromUpload = try ImageKind.comesFromUpload(sourceImageID, context.db)
            if task == .inpaint, let width: Int = try source.get("width"), let height: Int = try source.get("height") {
                sourceSize = (width, height)
            }
        }
        let mark = Provenance.of(task: task, model: model, fromUpload: fromUpload, at: context.now())
        var stored: [(key: String, thumbnail: String?, width: Int, height: Int)] = []
        func discardStored() { discard(stored.flatMap { [$0.key, $0.thumbnail].compactMap { $0 } }) }
        do {
            for fetch in outputs {
                let bytes = try fetch()
                if task == .video {
                    guard bytes.count > 12, Array(bytes[4..<8]) == Array("ftyp".utf8) else {
                        throw ImagingError(description: "the video output is not an MP4 file")
                    }
                    guard let marked = mark.markingMP4(bytes) else {
                        throw ImagingError(description: "the video output is not a well-formed MP4 file")
                    }
                    let key = FileMediaStorage.newKey(extension: "mp4")
                    try storage.put(marked, key: key, contentType: "video/mp4")
                    stored.append((key, nil, 0, 0))
                } else {
                    guard let probe = ImageProbe.probe(bytes), probe.pixels <= 100_000_000 else {
                        throw ImagingError(description: "the output is not a PNG, JPEG or WebP image")
                    }
                    var image = try Imaging.decode(bytes)
                    if let size = sourceSize, size.width != image.width || size.height != image.height {
                        // Inpainting keeps the picture's size, whatever the model answered.
                        image = try Imaging.resize(image, width: size.width, height: size.height)
                    }
                    let key = FileMediaStorage.newKey(extension: "webp")
                    let thumbnailKey = FileMediaStorage.newKey(extension: "webp")
                    try storage.put(try Imaging.encode(image, as: .webp, quality: 92, mark: mark), key: key, contentType: "image/webp")
                    stored.append((key, nil, image.width, image.height))
                    try storage.put(try Imaging.thumbnail(image, mark: mark), key: thumbnailKey, contentType: "image/webp")
                    stored[stored.count - 1].thumbnail = thumbnailKey
                }
            }
            let claimed = try context.db.transaction { () -> Bool in
                let claim = try context.db.execute(
                    """
                    UPDATE generations SET status = 'succeeded', pending_outputs = NULL, error = NULL, completed_at = now(), updated_at = now(),
                           started_at = COALESCE(started_at, now())
                    WHERE id = \(generationID) AND status IN \(GenerationStatus.sql(GenerationStatus.open))
                      AND (pending_outputs IS NOT NULL OR NOT \(pending))
                    """)
                guard claim == 1 else { return false }
                for output in stored {
                    if task == .video {
                        try context.db.execute(
                            """
                            INSERT INTO videos (user_id, storage_key, prompt, style, colour, model, provider, seed, status, generation_id, completed_at)
                            VALUES (\(userID), \(output.key), \(job.prompt ?? ""), \(job.style), \(job.colour), \(model), \(provider), \(job.seed),
                                    'succeeded', \(generationID), now())
                            """)
                    } else {
                        let kind: ImageKind = task == .upscale ? .upscaled : task == .inpaint ? .inpainted : .generated
                        try context.db.execute(
                            """
                            INSERT INTO images (user_id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id,
                                                width, height, model, provider, seed, status, generation_id, completed_at)
                            VALUES (\(userID), \(output.key), \(output.thumbnail), \(job.prompt ?? ""), \(job.style), \(job.colour), \(kind.rawValue),
                                    \(sourceImageID), \(output.width), \(output.height), \(model), \(provider), \(job.seed), 'succeeded',
                                    \(generationID), now())
                            """)
                    }
                }
                return true
            }
            if claimed {
                discard([job.maskKey].compactMap { $0 })
            } else {
                discardStored()
            }
            return claimed
        } catch {
            discardStored()
            throw error
        }
    }

    func discard(_ keys: [String]) {
        for key in keys { try? context.media.delete(key: key) }
    }

    /// An output: an HTTPS URL fetched with a size cap and timeouts, or a `data:` URI.
    public static func download(_ reference: String, maxBytes: Int = 100 * 1024 * 1024) throws -> [UInt8] {
        if reference.hasPrefix("data:") {
            guard let comma = reference.firstIndex(of: ","), reference[..<comma].hasSuffix(";base64"),
                let bytes = Encoding.fromBase64(String(reference[reference.index(after: comma)...]))
            else {
                throw ImagingError(description: "unreadable data URI")
            }
            return bytes
        }
        guard reference.hasPrefix("https://") || reference.hasPrefix("http://") else {
            throw ImagingError(description: "unsupported output reference")
        }
        let response = try HTTPClient(connectTimeoutMs: 5000, timeoutMs: 60_000, maxResponseBytes: maxBytes)
            .send(method: "GET", url: reference)
        guard response.status == 200 else { throw ImagingError(description: "download answered HTTP \(response.status)") }
        return response.body
    }
}
