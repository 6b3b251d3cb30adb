public import SharedKitCore
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A video is named by `ID<VideoRecord>`.
public typealias VideoID = ID<VideoRecord>

public struct VideoRecord: Decodable, PostgresRecord, Sendable {
    public let id: VideoID
    public let userId: UserID
    public let storageKey: String?
    public let posterKey: String?
    public let prompt: String
    public let style: String?
    public let colour: String?
    public let width: Int?
    public let height: Int?
    public let durationSeconds: Double?
    public let model: String?
    public let seed: Int64?
    public let status: String
    public let error: String?
    public let generationId: GenerationID?
    public let createdAt: Date
    public let provider: String?

    public static let columns: SQLQuery = """
        id, user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds, model, seed, status, error, \
        generation_id, created_at, provider
        """
}

extension VideoRecord: CursorColumns {
    public static var createdAtColumn: Int { 15 }
}

extension VideoRecord {
    /// The columns in the order of `columns`.
    public init(_ row: inout PostgresRow.Reader) throws {
        self.init(
            id: try row.next(), userId: try row.next(), storageKey: try row.next(), posterKey: try row.next(),
            prompt: try row.next(), style: try row.next(), colour: try row.next(), width: try row.next(),
            height: try row.next(), durationSeconds: try row.next(), model: try row.next(), seed: try row.next(),
            status: try row.next(), error: try row.next(), generationId: try row.next(), createdAt: try row.next(),
            provider: try row.next())
    }
}

public struct VideoView: JSONWritable, Sendable {
    public let record: VideoRecord
    public let url: String?
    public let posterUrl: String?

    public init(_ record: VideoRecord, storage: any MediaStorage) {
        self.record = record
        url = record.storageKey.map { storage.url(for: $0) }
        posterUrl = record.posterKey.map { storage.url(for: $0) }
    }

    public func write(to json: inout JSONWriter) {
        json.object { o in
            o.field("colour", record.colour)
            o.field("created_at", record.createdAt)
            o.field("duration_seconds", record.durationSeconds)
            o.field("error", record.error)
            o.field("generation_id", record.generationId)
            o.field("height", record.height)
            o.field("id", record.id)
            o.field("model", record.model)
            o.field("poster_url", posterUrl)
            o.field("prompt", record.prompt)
            o.field("provider", record.provider)
            o.field("seed", record.seed)
            o.field("status", record.status)
            o.field("style", record.style)
            o.field("url", url)
            o.field("width", record.width)
        }
    }
}

/// The video listing's rows: the JSON of `VideoView`.
public enum VideoRowLayout: MediaRowLayout {
    public static func write(_ row: PostgresRow, from c: Int, urls: MediaURLs, to o: inout JSONWriter) {
        o.key("colour"); o.text(row, c + 6)
        o.key("created_at"); o.time(row, c + 15)
        // A real: through Double, so whole numbers lose their fraction as Foundation writes them.
        o.field("duration_seconds", try? row.get(c + 9, as: Double?.self))
        o.key("error"); o.text(row, c + 13)
        o.key("generation_id"); o.text(row, c + 14)
        o.key("height"); o.integer(row, c + 8)
        o.key("id"); o.text(row, c + 0)
        o.key("model"); o.text(row, c + 10)
        o.key("poster_url"); urls.write(row, c + 3, to: &o)
        o.key("prompt"); o.text(row, c + 4)
        o.key("provider"); o.text(row, c + 16)
        o.key("seed"); o.integer(row, c + 11)
        o.key("status"); o.text(row, c + 12)
        o.key("style"); o.text(row, c + 5)
        o.key("url"); urls.write(row, c + 2, to: &o)
        o.key("width"); o.integer(row, c + 7)
    }
}

public typealias VideoRows = MediaRows<VideoRowLayout>
