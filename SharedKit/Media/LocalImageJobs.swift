import Logging

public import SharedKit

/// Jobs the embedded provider finishes inside the request: render or transform, encode, store the file
/// and its thumbnail, and record the image. If storing fails the job fails and its quota is refunded.
public struct LocalImageJobs {
    let context: Context
    let generations: Generations

    public init(_ context: Context) {
        self.context = context
        self.generations = Generations(context)
    }

    public struct Stored: Sendable {
        public let generationID: String
        public let image: ImageRecord
    }

    /// Keeps an upload in the gallery (kind `uploaded`, no quota) so a transform can name its source.
    public func storeUpload(userID: String, image: RGBImage) throws -> ImageRecord {
        let storage = context.media
        let key = FileMediaStorage.newKey(extension: "webp")
        let thumbnailKey = FileMediaStorage.newKey(extension: "webp")
        // The user's own picture: no provenance mark, and none of its metadata (the pixels alone are kept).
        try storage.put(try Imaging.encode(image, as: .webp, quality: 92, mark: nil), key: key, contentType: "image/webp")
        do {
            try storage.put(try Imaging.thumbnail(image, mark: nil), key: thumbnailKey, contentType: "image/webp")
            return try context.db.query("""
                INSERT INTO images (user_id, storage_key, thumbnail_key, kind, width, height, status, completed_at)
                VALUES (\(userID), \(key), \(thumbnailKey), 'uploaded', \(image.width), \(image.height), 'succeeded', now())
                RETURNING \(ImageRecord.columns)
                """).records(ImageRecord.self)[0]
        } catch {
            try? storage.delete(key: key)
            try? storage.delete(key: thumbnailKey)
            throw error
        }
    }

    /// A whole job of the embedded provider as one transaction: reserve the quota and record the job, make
    /// the image, store it, record it. If making or storing fails, the job is recorded as failed and
    /// refunded; if PostgreSQL itself goes away midway, nothing was committed at all (no charge, no job)
    /// and the files written are removed, so "nothing was changed" in the 503 is true. `fromUpload`: the
    /// source is a picture the user uploaded (the result is marked as a composite).
    public func run<Input: Codable & Sendable>(
        userID: String, task: Generations.Task, input: Input, cost: Int, sourceImageID: String?, fromUpload: Bool = false, kind: String,
        prompt: String, style: String?, colour: String?, seed: Int64?, make: () throws -> RGBImage
    ) throws -> Stored {
        let mark = Provenance.of(task: task, model: LocalRenderer.model, fromUpload: fromUpload, at: context.now())
        var written: [String] = []
        do {
            let outcome: Result<Stored, any Error> = try context.db.transaction {
                let generationID = try generations.create(userID: userID, task: task, provider: "local", input: input, cost: cost,
                                                          sourceImageID: sourceImageID)
                do {
                    let stored = try finish(generationID: generationID, userID: userID, image: make, mark: mark, kind: kind, prompt: prompt,
                                            style: style, colour: colour, seed: seed, sourceImageID: sourceImageID)
                    written = [stored.image.storageKey, stored.image.thumbnailKey].compactMap { $0 }
                    return .success(stored)
                } catch {
                    return .failure(error)  // committed as failed and refunded, then reported
                }
            }
            return try outcome.get()
        } catch let error as DependencyUnavailable where error.dependency == .database {
            for key in written { try? context.media.delete(key: key) }
            throw error
        }
    }

    /// Stores the image as the result of generation `generationID`, or fails the generation and refunds.
    public func finish(generationID: String, userID: String, image make: () throws -> RGBImage, mark: Provenance, kind: String, prompt: String,
                       style: String?, colour: String?, seed: Int64?, sourceImageID: String?) throws -> Stored {
        let storage = context.media
        var keys: [String] = []
        do {
            let image = try make()
            let encoded = try Imaging.encode(image, as: .webp, quality: 90, mark: mark)
            let thumbnail = try Imaging.thumbnail(image, mark: mark)
            let key = FileMediaStorage.newKey(extension: "webp")
            let thumbnailKey = FileMediaStorage.newKey(extension: "webp")
            try storage.put(encoded, key: key, contentType: "image/webp")
            keys.append(key)
            try storage.put(thumbnail, key: thumbnailKey, contentType: "image/webp")
            keys.append(thumbnailKey)
            let record = try context.db.transaction { () -> ImageRecord in
                let row = try context.db.query("""
                    INSERT INTO images (user_id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id,
                                        width, height, model, seed, status, generation_id, completed_at)
                    VALUES (\(userID), \(key), \(thumbnailKey), \(prompt), \(style), \(colour), \(kind), \(sourceImageID),
                            \(image.width), \(image.height), \(mark.model), \(seed), 'succeeded', \(generationID), now())
                    RETURNING \(ImageRecord.columns)
                    """)
                try generations.markSucceeded(generationID)
                return try row.records(ImageRecord.self)[0]
            }
            return Stored(generationID: generationID, image: record)
        } catch {
            for key in keys { try? storage.delete(key: key) }
            context.logger.error("local job failed", metadata: ["generation.id": .string(generationID), "error": .string("\(error)")])
            if let unavailable = error as? DependencyUnavailable, unavailable.dependency == .database { throw error }
            let storageDown = error is DependencyUnavailable
            try generations.markFailed(generationID, error: storageDown
                ? "The image could not be saved; your quota was refunded. Please try again."
                : "The image could not be made; your quota was refunded.")
            throw storageDown ? error : HTTPError(.internalServerError, code: "generation_failed",
                                                 message: "The image could not be made; your quota was refunded.")
        }
    }
}
