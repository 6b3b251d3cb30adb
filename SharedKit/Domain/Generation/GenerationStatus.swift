public import SharedKitStores

/// A generation's state, as `generations.status` keeps it (a CHECK constraint names the same five), and the
/// one definition of each set of states the code asks about, in Swift and in SQL.
public enum GenerationStatus: String, CaseIterable, Sendable {
    case queued, running, succeeded, failed, canceled

    /// Not ended: the job is with a provider, waiting to start, or having its output copied.
    public static let open: [Self] = [.queued, .running]
    /// Ended for good (a completion webhook's moment).
    public static let ended: [Self] = [.succeeded, .failed, .canceled]

    /// `('a', 'b')` for `status IN \(GenerationStatus.sql(GenerationStatus.open))`: our own constants, so
    /// the statement text stays the same (it stays prepared, and the partial index on open jobs matches).
    public static func sql(_ set: [Self]) -> SQLQuery {
        SQLQuery(unsafeSQL: "(" + set.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")")
    }
}

/// What an image is, as `images.kind` keeps it.
public enum ImageKind: String, CaseIterable, Sendable {
    case generated, upscaled, inpainted, uploaded

    /// Whether the image is, or was made from, a picture a user uploaded, however many transforms back
    /// (an upscale of an inpaint of an upload is still a composite with someone's picture). A chain cut by a
    /// deleted ancestor counts as far as it is known.
    public static func comesFromUpload(_ imageID: ImageID, _ db: PostgresConnection) throws -> Bool {
        try db.query(
            """
            WITH RECURSIVE chain (kind, source_image_id, depth) AS (
                SELECT kind, source_image_id, 0 FROM images WHERE id = \(imageID)
                UNION ALL
                SELECT i.kind, i.source_image_id, c.depth + 1 FROM images i JOIN chain c ON i.id = c.source_image_id WHERE c.depth < 100
            )
            SELECT coalesce(bool_or(kind = \(Self.uploaded.rawValue)), false) AS from_upload FROM chain
            """
        ).first?.get("from_upload", as: Bool.self) ?? false
    }
}
