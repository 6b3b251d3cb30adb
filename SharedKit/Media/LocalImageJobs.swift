import Logging
public import SharedKit
import SharedKitStores

/// Images the embedded provider finishes inside the request: render or transform, encode, store the file
/// and its thumbnail, and record the image (through `GenerationJobs`' one flow), and uploads kept as the
/// source of a transform.
public struct LocalImageJobs {
    let context: Context

    public init(_ context: Context) {
        self.context = context
    }

    public struct Stored: Sendable {
        public let generationID: GenerationID
        public let image: ImageRecord
    }

    /// Keeps an upload in the gallery (kind `uploaded`, no quota) so a transform can name its source.
    public func storeUpload(userID: UserID, image: RGBImage) throws -> ImageRecord {
        let storage = context.media
        let key = FileMediaStorage.newKey(extension: "webp")
        let thumbnailKey = FileMediaStorage.newKey(extension: "webp")
        // The user's own picture: no provenance mark, and none of its metadata (the pixels alone are kept).
        try storage.put(try Imaging.encode(image, as: .webp, quality: 92, mark: nil), key: key, contentType: "image/webp")
        do {
            try storage.put(try Imaging.thumbnail(image, mark: nil), key: thumbnailKey, contentType: "image/webp")
            return try context.db.query(
                """
                INSERT INTO images (user_id, storage_key, thumbnail_key, kind, width, height, status, completed_at)
                VALUES (\(userID), \(key), \(thumbnailKey), \(ImageKind.uploaded.rawValue), \(image.width), \(image.height), 'succeeded', now())
                RETURNING \(ImageRecord.columns)
                """
            ).records(ImageRecord.self)[0]
        } catch {
            try? storage.delete(key: key)
            try? storage.delete(key: thumbnailKey)
            throw error
        }
    }

    /// A whole job of the embedded provider (`GenerationJobs.runLocally`): make the image, store it and its
    /// thumbnail with the AI-content mark, and record it. `fromUpload`: the source is a picture the user
    /// uploaded (the result is marked as a composite).
    public func run<Input: Codable & Sendable>(
        userID: UserID, task: Generations.Task, input: Input, cost: Int, sourceImageID: ImageID?, webhookURL: String? = nil,
        fromUpload: Bool = false, kind: ImageKind,
        prompt: String, style: String?, colour: String?, seed: Int64?, make: () throws -> RGBImage
    ) throws -> Stored {
        let mark = Provenance.of(task: task, model: LocalRenderer.model, fromUpload: fromUpload, at: context.now())
        let storage = context.media
        let done = try GenerationJobs(context).runLocally(
            userID: userID, task: task, input: input, cost: cost, sourceImageID: sourceImageID, webhookURL: webhookURL,
            failure: "The image could not be made; your quota was refunded."
        ) { generationID, written -> ImageRecord in
            let image = try make()
            let encoded = try Imaging.encode(image, as: .webp, quality: 90, mark: mark)
            let thumbnail = try Imaging.thumbnail(image, mark: mark)
            let key = FileMediaStorage.newKey(extension: "webp")
            let thumbnailKey = FileMediaStorage.newKey(extension: "webp")
            try storage.put(encoded, key: key, contentType: "image/webp")
            written.append(key)
            try storage.put(thumbnail, key: thumbnailKey, contentType: "image/webp")
            written.append(thumbnailKey)
            return try context.db.query(
                """
                INSERT INTO images (user_id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id,
                                    width, height, model, provider, seed, status, generation_id, completed_at)
                VALUES (\(userID), \(key), \(thumbnailKey), \(prompt), \(style), \(colour), \(kind.rawValue), \(sourceImageID),
                        \(image.width), \(image.height), \(mark.model), 'local', \(seed), 'succeeded', \(generationID), now())
                RETURNING \(ImageRecord.columns)
                """
            ).records(ImageRecord.self)[0]
        }
        return Stored(generationID: done.generationID, image: done.output)
    }
}
