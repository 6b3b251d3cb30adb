#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

public struct VideoRecord: Decodable, Sendable {
    public let id: String
    public let userId: String
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
    public let generationId: String?
    public let createdAt: Date

    public static let columns: SQLQuery = """
        id, user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds, model, seed, status, error, \
        generation_id, created_at
        """
}

public struct VideoView: Encodable, Sendable {
    public let record: VideoRecord
    public let url: String?
    public let posterUrl: String?

    public init(_ record: VideoRecord, storage: any MediaStorage) {
        self.record = record
        url = record.storageKey.map { storage.url(for: $0) }
        posterUrl = record.posterKey.map { storage.url(for: $0) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(record.id, forKey: .id)
        try c.encode(record.status, forKey: .status)
        try c.encode(record.prompt, forKey: .prompt)
        try c.encode(record.style, forKey: .style)
        try c.encode(record.colour, forKey: .colour)
        try c.encode(record.width, forKey: .width)
        try c.encode(record.height, forKey: .height)
        try c.encode(record.durationSeconds, forKey: .durationSeconds)
        try c.encode(record.seed, forKey: .seed)
        try c.encode(record.model, forKey: .model)
        try c.encode(record.error, forKey: .error)
        try c.encode(url, forKey: .url)
        try c.encode(posterUrl, forKey: .posterUrl)
        try c.encode(record.generationId, forKey: .generationId)
        try c.encode(record.createdAt, forKey: .createdAt)
    }

    enum CodingKeys: String, CodingKey {
        case id, status, prompt, style, colour, width, height, durationSeconds, seed, model, error, url, posterUrl, generationId, createdAt
    }
}
