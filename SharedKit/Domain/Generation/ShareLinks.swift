public import SharedKitCore
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// Share links: one image or video made public under `/s/<token>` until its owner revokes the link or
/// deletes the item.
///
/// The token is the link's id (16 bytes) followed by the first 16 bytes of an HMAC-SHA256 of that id under
/// a key derived from APP_SECRET, in base64url (43 characters, 256 bits of which 128 are unguessable). The
/// table stores only the id, so a copy of the database gives nobody a working link, while the owner can
/// be shown the link again at any time. Changing APP_SECRET retires every link.
public struct ShareLinks {
    let db: PostgresConnection
    let key: [UInt8]

    public init(db: PostgresConnection, appSecret: String) {
        self.db = db
        self.key = Digest.hmacSHA256(key: appSecret, message: "atelier share links v1")
    }

    /// The most live links one listing returns (newest first).
    public static let listLimit = 1000

    // MARK: tokens

    public func token(for id: ID<Link>) -> String {
        let raw = Self.uuidBytes(id)
        return Encoding.base64URL(raw + Array(Digest.hmacSHA256(key: key, message: raw).prefix(16)))
    }

    /// The link id a token stands for, when its MAC is ours; nil for anything else (no database read).
    public func id(fromToken token: String) -> ID<Link>? {
        guard token.utf8.count == 43, let raw = Encoding.fromBase64URL(token), raw.count == 32 else { return nil }
        let id = Array(raw.prefix(16))
        guard Digest.constantTimeEquals(Array(raw.suffix(16)), Array(Digest.hmacSHA256(key: key, message: id).prefix(16))) else {
            return nil
        }
        return ID(Self.uuidText(id))
    }

    /// The id's 16 bytes (its text is a checked UUID: 32 hex digits and four dashes).
    static func uuidBytes(_ id: ID<Link>) -> [UInt8] {
        Encoding.fromHex(String(id.text.filter { $0 != "-" })) ?? []
    }

    static func uuidText(_ bytes: [UInt8]) -> String {
        let hex = Array(Encoding.hex(bytes))
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
    }

    // MARK: the owner's side

    /// A link as its owner sees it.
    public struct Link: PostgresRecord, Sendable {
        public let id: ID<Link>
        public let imageId: ImageID?
        public let videoId: VideoID?
        public let showUsername: Bool
        public let views: Int64
        public let createdAt: Date

        static let columns: SQLQuery = "id, image_id, video_id, show_username, views, created_at"

        public init(_ row: inout PostgresRow.Reader) throws {
            id = try row.next()
            imageId = try row.next()
            videoId = try row.next()
            showUsername = try row.next()
            views = try row.next()
            createdAt = try row.next()
        }
    }

    /// What is shared: an image or a video of the owner.
    public enum Item: Sendable {
        case image(ImageID)
        case video(VideoID)
    }

    /// The item's live link with `showUsername` as asked (created: false), or a new one (created: true);
    /// nil when the user has no such finished item.
    public func share(_ item: Item, userID: UserID, showUsername: Bool) throws -> (link: Link, created: Bool)? {
        let imageID: ImageID?, videoID: VideoID?
        switch item {
        case .image(let id): (imageID, videoID) = (id, nil)
        case .video(let id): (imageID, videoID) = (nil, id)
        }
        func existing() throws -> Link? {
            try db.query(
                """
                UPDATE share_links SET show_username = \(showUsername)
                WHERE user_id = \(userID) AND revoked_at IS NULL
                  AND (image_id = \(imageID) OR video_id = \(videoID))
                RETURNING \(Link.columns)
                """
            ).records(Link.self).first
        }
        if let link = try existing() { return (link, false) }
        // The item must be the user's and finished; a concurrent share of the same item loses to the
        // partial unique index and answers the winner's link.
        let inserted = try db.query(
            """
            INSERT INTO share_links (user_id, image_id, video_id, show_username)
            SELECT \(userID), \(imageID)::uuid, \(videoID)::uuid, \(showUsername)
            WHERE EXISTS (SELECT 1 FROM images WHERE id = \(imageID) AND user_id = \(userID) AND storage_key IS NOT NULL)
               OR EXISTS (SELECT 1 FROM videos WHERE id = \(videoID) AND user_id = \(userID) AND storage_key IS NOT NULL)
            ON CONFLICT DO NOTHING
            RETURNING \(Link.columns)
            """
        ).records(Link.self).first
        if let inserted { return (inserted, true) }
        return try existing().map { ($0, false) }
    }

    /// The user's live links, newest first (at most `listLimit`), and whether there are more.
    public func live(userID: UserID) throws -> (links: [Link], more: Bool) {
        let links = try db.query(
            """
            SELECT \(Link.columns) FROM share_links WHERE user_id = \(userID) AND revoked_at IS NULL
            ORDER BY created_at DESC, id DESC LIMIT \(Self.listLimit + 1)
            """
        ).records(Link.self)
        return (Array(links.prefix(Self.listLimit)), links.count > Self.listLimit)
    }

    /// Revokes the user's live link `id`; false when there is none.
    public func revoke(id: ID<Link>, userID: UserID) throws -> Bool {
        return try db.execute(
            """
            UPDATE share_links SET revoked_at = now() WHERE id = \(id) AND user_id = \(userID) AND revoked_at IS NULL
            """) == 1
    }

    // MARK: the visitor's side

    /// What a visitor of a live link sees.
    public struct Shared: PostgresRecord, Sendable {
        public let imageId: String?
        public let storageKey: String
        public let posterKey: String?
        public let prompt: String
        /// The image's kind (`generated`, `upscaled`, `inpainted`, `uploaded`); nil for a video.
        public let imageKind: String?
        public let width: Int?
        public let height: Int?
        public let model: String?
        /// The owner's username when they chose to show it.
        public let username: String?
        public let createdAt: Date

        public var isVideo: Bool { imageId == nil }

        public init(_ row: inout PostgresRow.Reader) throws {
            imageId = try row.next()
            storageKey = try row.next()
            posterKey = try row.next()
            prompt = try row.next()
            imageKind = try row.next()
            width = try row.next()
            height = try row.next()
            model = try row.next()
            username = try row.next()
            createdAt = try row.next()
        }
    }

    /// The item behind a live link, counting a view when `countView` (the page, not its media files).
    /// Nil for a token that is not ours, a revoked link, or a deleted item (its link went with it).
    public func open(token: String, countView: Bool) throws -> Shared? {
        guard let id = id(fromToken: token) else { return nil }
        let link: SQLQuery =
            countView
            ? "UPDATE share_links SET views = views + 1 WHERE id = \(id) AND revoked_at IS NULL RETURNING user_id, image_id, video_id, show_username"
            : "SELECT user_id, image_id, video_id, show_username FROM share_links WHERE id = \(id) AND revoked_at IS NULL"
        return try db.query(
            """
            WITH link AS (\(link))
            SELECT link.image_id, coalesce(i.storage_key, v.storage_key), v.poster_key, coalesce(i.prompt, v.prompt),
                   i.kind, coalesce(i.width, v.width), coalesce(i.height, v.height), coalesce(i.model, v.model),
                   CASE WHEN link.show_username THEN u.username::text END, coalesce(i.created_at, v.created_at)
            FROM link JOIN users u ON u.id = link.user_id
            LEFT JOIN images i ON i.id = link.image_id
            LEFT JOIN videos v ON v.id = link.video_id
            WHERE coalesce(i.storage_key, v.storage_key) IS NOT NULL
            """
        ).records(Shared.self).first
    }
}
