public import SharedKitCore
public import SharedKitRuntime
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// An image is named by `ID<ImageRecord>`.
public typealias ImageID = ID<ImageRecord>

/// Images and videos as stored, and as the API shows them.
public struct ImageRecord: Decodable, PostgresRecord, Sendable {
    public let id: ImageID
    public let userId: UserID
    public let storageKey: String?
    public let thumbnailKey: String?
    public let prompt: String
    public let style: String?
    public let colour: String?
    public let kind: String
    public let sourceImageId: ImageID?
    public let width: Int?
    public let height: Int?
    public let model: String?
    public let seed: Int64?
    public let status: String
    public let error: String?
    public let generationId: GenerationID?
    public let createdAt: Date
    public let completedAt: Date?
    public let provider: String?

    public static let columns: SQLQuery = """
        id, user_id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id, width, height, model, seed, \
        status, error, generation_id, created_at, completed_at, provider
        """
}

/// Where a listed record keeps its creation time among its `columns` (its id is the first).
public protocol CursorColumns {
    static var createdAtColumn: Int { get }
}

extension ImageRecord: CursorColumns {
    public static var createdAtColumn: Int { 16 }
}

extension ImageRecord {
    /// The columns in the order of `columns`.
    public init(_ row: inout PostgresRow.Reader) throws {
        self.init(
            id: try row.next(), userId: try row.next(), storageKey: try row.next(), thumbnailKey: try row.next(),
            prompt: try row.next(), style: try row.next(), colour: try row.next(), kind: try row.next(),
            sourceImageId: try row.next(), width: try row.next(), height: try row.next(), model: try row.next(),
            seed: try row.next(), status: try row.next(), error: try row.next(), generationId: try row.next(),
            createdAt: try row.next(), completedAt: try row.next(), provider: try row.next())
    }
}

public struct ImageView: JSONWritable, Sendable {
    public let id: ImageID
    public let status: String
    public let kind: String
    public let prompt: String
    public let style: String?
    public let colour: String?
    public let width: Int?
    public let height: Int?
    public let seed: Int64?
    public let model: String?
    public let provider: String?
    public let url: String?
    public let thumbnailUrl: String?
    public let sourceImageId: ImageID?
    public let generationId: GenerationID?
    public let createdAt: Date

    public init(_ record: ImageRecord, storage: any MediaStorage) {
        id = record.id
        status = record.status
        kind = record.kind
        prompt = record.prompt
        style = record.style
        colour = record.colour
        width = record.width
        height = record.height
        seed = record.seed
        model = record.model
        provider = record.provider
        url = record.storageKey.map { storage.url(for: $0) }
        thumbnailUrl = record.thumbnailKey.map { storage.url(for: $0) }
        sourceImageId = record.sourceImageId
        generationId = record.generationId
        createdAt = record.createdAt
    }

    // Every documented key is always present (absent values are null), in sorted order.
    public func write(to json: inout JSONWriter) {
        json.object { o in
            o.field("colour", colour)
            o.field("created_at", createdAt)
            o.field("generation_id", generationId)
            o.field("height", height)
            o.field("id", id)
            o.field("kind", kind)
            o.field("model", model)
            o.field("prompt", prompt)
            o.field("provider", provider)
            o.field("seed", seed)
            o.field("source_image_id", sourceImageId)
            o.field("status", status)
            o.field("style", style)
            o.field("thumbnail_url", thumbnailUrl)
            o.field("url", url)
            o.field("width", width)
        }
    }
}

/// A page of media written straight from PostgreSQL's rows: each column's bytes go to the JSON as they
/// are (escaped), with no String, Date or record made per value on the way. `Layout` says which column
/// is which key; the rows' columns are the record's `columns`, from `start`.
public struct MediaRows<Layout: MediaRowLayout>: JSONWritable {
    let rows: ArraySlice<PostgresRow>
    let start: Int
    let urls: MediaURLs

    public init(_ rows: ArraySlice<PostgresRow>, from start: Int, storage: any MediaStorage) {
        self.rows = rows
        self.start = start
        urls = MediaURLs(storage: storage)
    }

    public func write(to json: inout JSONWriter) {
        json.array(rows.map { Row(row: $0, start: start, urls: urls) })
    }

    struct Row: JSONWritable {
        let row: PostgresRow
        let start: Int
        let urls: MediaURLs

        func write(to json: inout JSONWriter) {
            json.object { Layout.write(row, from: start, urls: urls, to: &$0) }
        }
    }
}

/// Which column of a record's `columns` goes to which key of its JSON, in sorted key order.
public protocol MediaRowLayout {
    static func write(_ row: PostgresRow, from c: Int, urls: MediaURLs, to o: inout JSONWriter)
}

/// Media URLs for key columns: prefix and key when the storage has one prefix, else made per key.
public struct MediaURLs {
    let storage: any MediaStorage
    let prefix: String?

    init(storage: any MediaStorage) {
        self.storage = storage
        prefix = storage.urlPrefix
    }

    func write(_ row: PostgresRow, _ column: Int, to json: inout JSONWriter) {
        if let prefix { return json.url(prefix: prefix, key: row, column) }
        json.value(try? row.get(column, as: String?.self).map { storage.url(for: $0) })
    }
}

/// The gallery's rows: the JSON of `ImageView`.
public enum ImageRowLayout: MediaRowLayout {
    public static func write(_ row: PostgresRow, from c: Int, urls: MediaURLs, to o: inout JSONWriter) {
        o.key("colour"); o.text(row, c + 6)
        o.key("created_at"); o.time(row, c + 16)
        o.key("generation_id"); o.text(row, c + 15)
        o.key("height"); o.integer(row, c + 10)
        o.key("id"); o.text(row, c + 0)
        o.key("kind"); o.text(row, c + 7)
        o.key("model"); o.text(row, c + 11)
        o.key("prompt"); o.text(row, c + 4)
        o.key("provider"); o.text(row, c + 18)
        o.key("seed"); o.integer(row, c + 12)
        o.key("source_image_id"); o.text(row, c + 8)
        o.key("status"); o.text(row, c + 13)
        o.key("style"); o.text(row, c + 5)
        o.key("thumbnail_url"); urls.write(row, c + 3, to: &o)
        o.key("url"); urls.write(row, c + 2, to: &o)
        o.key("width"); o.integer(row, c + 9)
    }
}

public typealias ImageRows = MediaRows<ImageRowLayout>

/// One page of a listing: `{"items": [...], "next_cursor": "…" | null}`.
public struct Page<Items: JSONWritable>: JSONWritable {
    public let items: Items
    public let nextCursor: String?

    public init(items: Items, nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }

    public func write(to json: inout JSONWriter) {
        json.object { o in
            o.field("items", items)
            o.field("next_cursor", nextCursor)
        }
    }
}

/// Newest-first keyset pages: the cursor is the (created_at, id) of the last row shown, so rows added
/// meanwhile never shift a page (no duplicates, no gaps).
public struct PageCursor: Sendable {
    public let createdAt: Date
    /// The last row shown: an image or a video.
    public let id: ID<PageCursor>

    public init(createdAt: Date, id: ID<PageCursor>) {
        self.createdAt = createdAt
        self.id = id
    }

    /// The cursor after a row of a record whose columns begin at `start` (its id first, created_at named).
    public init<Record: CursorColumns>(row: PostgresRow, from start: Int, _ record: Record.Type) throws {
        self.init(createdAt: try row.get(start + Record.createdAtColumn), id: try row.get(start))
    }

    public var token: String { Encoding.base64URL(Array("\(Timestamp.format(createdAt))|\(id)".utf8)) }

    public static func parse(_ token: String?) throws -> PageCursor? {
        guard let token, !token.isEmpty else { return nil }
        guard let bytes = Encoding.fromBase64URL(token), let text = String(validating: bytes, as: UTF8.self),
            let bar = text.firstIndex(of: "|"), let date = Timestamp.parse(String(text[..<bar]))
        else {
            throw HTTPError(.badRequest, code: "invalid_cursor", message: "The cursor is not one this API gave out.")
        }
        guard let id = ID<PageCursor>(String(text[text.index(after: bar)...])) else {
            throw HTTPError(.badRequest, code: "invalid_cursor", message: "The cursor is not one this API gave out.")
        }
        return PageCursor(createdAt: date, id: id)
    }

    /// The page size from `limit` (default 24, 1…100).
    public static func limit(_ request: Request, default value: Int = 24, maximum: Int = 100) throws -> Int {
        guard let text = request.query("limit"), !text.isEmpty else { return value }
        guard let limit = Int(text), (1...maximum).contains(limit) else {
            throw HTTPError(.badRequest, code: "invalid_limit", message: "limit must be a whole number from 1 to \(maximum).")
        }
        return limit
    }
}

/// The answer to a request that makes something: the generation, and the image or video once made
/// (`{"generation": …}` while a provider works on it, `{"generation": …, "image": …}` when done).
public struct GenerationAnswer: JSONWritable, Sendable {
    public let generation: Generations.View
    public let image: ImageView?
    public let video: VideoView?

    public static func queued(_ generation: Generations.View) -> GenerationAnswer {
        GenerationAnswer(generation: generation, image: nil, video: nil)
    }

    public static func made(_ generation: Generations.View, image: ImageView) -> GenerationAnswer {
        GenerationAnswer(generation: generation, image: image, video: nil)
    }

    public static func made(_ generation: Generations.View, video: VideoView) -> GenerationAnswer {
        GenerationAnswer(generation: generation, image: nil, video: video)
    }

    public func write(to json: inout JSONWriter) {
        json.object { o in
            o.field("generation", generation)
            if let image { o.field("image", image) }
            if let video { o.field("video", video) }
        }
    }
}
