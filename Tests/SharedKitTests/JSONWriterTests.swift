import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The typed writer must make the very bytes the API made with Foundation's encoder: the same escapes,
/// numbers, times and key order. Each check compares with `JSON.encoder()` directly, or re-encodes the
/// writer's output through it (decoded as `JSONValue`): equal bytes mean sorted keys and equal values.
@Suite struct JSONWriterTests {
    struct Sample: JSONWritable, Encodable {
        let text: String
        let count: Int
        let big: Int64?
        let flag: Bool
        let ratio: Double
        let when: Date
        let missing: String?
        let list: [String]

        func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("big", big)
                o.field("count", count)
                o.field("flag", flag)
                o.field("list", list)
                o.field("missing", missing)
                o.field("ratio", ratio)
                o.field("text", text)
                o.field("when", when)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(text, forKey: .text)
            try c.encode(count, forKey: .count)
            try c.encode(big, forKey: .big)
            try c.encode(flag, forKey: .flag)
            try c.encode(ratio, forKey: .ratio)
            try c.encode(when, forKey: .when)
            try c.encode(missing, forKey: .missing)
            try c.encode(list, forKey: .list)
        }

        enum Keys: String, CodingKey { case text, count, big, flag, ratio, when, missing, list }
    }

    static let awkward = "quote \" backslash \\ slash / tab \t newline \n cr \r bell \u{7} nul-free \u{1F} é 日本 🎨 \u{2028}"

    @Test(arguments: [
        Sample(
            text: awkward, count: 0, big: nil, flag: true, ratio: 2.0, when: Date(timeIntervalSince1970: 0),
            missing: nil, list: []),
        Sample(
            text: "", count: -42, big: Int64.max, flag: false, ratio: 2.5, when: Date(timeIntervalSince1970: 1_796_058_726.999_999),
            missing: "there", list: ["a", "b\"c", awkward]),
        Sample(
            text: "x", count: Int.min + 1, big: -7, flag: true, ratio: 0.1, when: Date(timeIntervalSince1970: 4_102_444_799.5),
            missing: nil, list: ["/"]),
    ])
    func primitivesMatchFoundation(sample: Sample) throws {
        let foundation = try JSON.encode(sample)
        let written = JSONWriter.bytes(of: sample)
        #expect(String(decoding: written, as: UTF8.self) == String(decoding: foundation, as: UTF8.self))
    }

    /// The writer's bytes, parsed and written again by Foundation's encoder in the API's dialect.
    func reencoded(_ bytes: [UInt8]) throws -> String {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        return String(decoding: try JSON.encode(value), as: UTF8.self)
    }

    func expectCanonical(_ value: some JSONWritable) throws {
        let written = JSONWriter.bytes(of: value)
        #expect(String(decoding: written, as: UTF8.self) == (try reencoded(written)))
    }

    static let created = Date(timeIntervalSince1970: 1_796_058_726.123_456)

    static func image(storageKey: String?) -> ImageRecord {
        ImageRecord(
            id: "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11", userId: "5d3c1a2b-0000-4000-8000-000000000001", storageKey: storageKey,
            thumbnailKey: storageKey.map { "thumb-" + $0 }, prompt: awkward, style: "watercolour", colour: nil, kind: "generated",
            sourceImageId: nil, width: 1024, height: 768, model: "local", seed: 4_294_967_295, status: "succeeded",
            error: nil, generationId: "a1b2c3d4-0000-4000-8000-000000000002", createdAt: created, completedAt: nil, provider: "openai")
    }

    @Test func listingsAreCanonical() throws {
        let storage = FileMediaStorage(root: "/tmp/unused")
        let images = [Self.image(storageKey: "ab/abcdef.webp"), Self.image(storageKey: nil)].map { ImageView($0, storage: storage) }
        try expectCanonical(Page(items: images, nextCursor: "eyJ9"))
        try expectCanonical(Page(items: [ImageView](), nextCursor: nil))

        let video = VideoRecord(
            id: "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f12", userId: "5d3c1a2b-0000-4000-8000-000000000001", storageKey: "cd/v.webp",
            posterKey: nil, prompt: "a cat",
            style: nil, colour: "teal", width: 1280, height: 720, durationSeconds: 3.5, model: nil, seed: nil, status: "succeeded",
            error: nil, generationId: nil, createdAt: Self.created, provider: "replicate")
        try expectCanonical(Page(items: [VideoView(video, storage: storage)], nextCursor: nil))

        let generation = Generations.View(
            id: "a1b2c3d4-0000-4000-8000-000000000002", task: "image", provider: "openai", model: "gpt-image-1",
            webhookUrl: "https://example.com/h", status: "failed",
            error: "The model said no.", cost: 1, refunded: true, imageIds: ["i1", "i2"],
            videoIds: [], createdAt: Self.created, startedAt: nil, completedAt: Self.created)
        try expectCanonical(generation)
        try expectCanonical(GenerationAnswer.queued(generation))
        try expectCanonical(GenerationAnswer.made(generation, image: images[0]))
        try expectCanonical(GenerationAnswer.made(generation, video: VideoView(video, storage: storage)))

        try expectCanonical([
            APIKeys.Listed(
                id: "6a000000-0000-4000-8000-00000000000a", name: "ci \"deploy\"", prefix: "atl_abcd", createdAt: Self.created,
                lastUsedAt: nil, revokedAt: Self.created),
            APIKeys.Listed(
                id: "6a000000-0000-4000-8000-00000000000b", name: "n", prefix: "atl_efgh", createdAt: Self.created,
                lastUsedAt: Self.created, revokedAt: nil),
        ])
        try expectCanonical(UserView.Premium(active: false, until: nil))
        try expectCanonical(QuotaPolicy.State(used: 3, limit: 10, period: "day", periodStart: Self.created, renewsAt: Self.created))
    }

    /// jsonb columns are parsed by the kit's parser: what Foundation's decoder reads, it reads the same.
    @Test(arguments: [
        #"{"premium_until": null, "a": [1, 2.5, -3e2, true, false], "b\u00e9\"": {"x": "line\nbreak \ud83c\udfa8 \/ tab\t"}}"#,
        #"[]"#, #"  "just a string"  "#, #"0"#, #"{"k": {}}"#, #"[[[["deep"]]]]"#,
    ])
    func jsonColumnsParseAsFoundationParses(text: String) throws {
        var copy = text
        let parsed = copy.withUTF8 { JSONValue.parse($0) }
        #expect(parsed == (try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))))
    }

    @Test(arguments: [#"{"a": }"#, #"[1, 2"#, #"tru"#, #""unterminated"#, #"{"a": 1} extra"#, #""\ud83c alone""#, "\"raw\u{1}control\""])
    func malformedJSONIsRefused(text: String) {
        var copy = text
        #expect(copy.withUTF8 { JSONValue.parse($0) } == nil)
    }

    @Test func jsonColumnsAreWrittenAsFoundationWritesThem() throws {
        let value: JSONValue = .object([
            "zeta": .number(1), "alpha": .array([.string("x/y"), .null, .bool(false), .number(2.5)]),
            "mid\"dle": .object(["b": .number(-3), "a": .string(Self.awkward)]),
        ])
        #expect(JSONWriter.bytes(of: value) == (try JSON.encode(value)))
    }
}

/// The galleries write rows straight from PostgreSQL's answer; their bytes must be those of the records
/// written through `ImageView` and `VideoView`, for every kind of value (NULLs, escapes, fractions of a
/// second, URLs from a prefix or made per key).
@Suite struct ListingRowsTests {
    let db = PostgresConnection(url: TestSupport.databaseURL, timeoutMs: 5000)

    struct SignedStorage: MediaStorage {
        func put(_ bytes: [UInt8], key: String, contentType: String) throws {}
        func read(key: String) throws -> [UInt8] { [] }
        func delete(key: String) throws {}
        func url(for key: String) -> String { "https://bucket.example/\(key)?X-Amz-Signature=abc&k=\"q\"" }
    }

    static let awkward = JSONWriterTests.awkward

    @Test(arguments: [true, false])
    func imageRowsMatchImageViews(prefixed: Bool) throws {
        let storage: any MediaStorage = prefixed ? FileMediaStorage(root: "/tmp/unused") : SignedStorage()
        let result = try db.query(
            """
            SELECT * FROM (VALUES
              ('0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11'::uuid, '5d3c1a2b-0000-4000-8000-000000000001'::uuid, 'ab/x.webp', 'ab/t.webp',
               \(Self.awkward), 'watercolour', NULL, 'generated', NULL::uuid, 1024, 768, 'local', 4294967295::bigint, 'succeeded',
               NULL, 'a1b2c3d4-0000-4000-8000-000000000002'::uuid, '2026-11-30 16:52:06.999999+00'::timestamptz, NULL::timestamptz, 'openai'),
              ('0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f12', '5d3c1a2b-0000-4000-8000-000000000001', NULL, NULL,
               'plain', NULL, 'teal', 'inpainted', '0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11', NULL, NULL, NULL, -3, 'failed',
               'It broke "badly"', NULL, '1999-01-02 03:04:05+00', '2026-01-01 00:00:00+00', NULL)
            ) AS t(id, user_id, storage_key, thumbnail_key, prompt, style, colour, kind, source_image_id, width, height, model,
                   seed, status, error, generation_id, created_at, completed_at, provider)
            """)
        let views = try result.records(ImageRecord.self).map { ImageView($0, storage: storage) }
        let direct = JSONWriter.bytes(of: Page(items: ImageRows(result.rows[...], from: 0, storage: storage), nextCursor: "c"))
        let made = JSONWriter.bytes(of: Page(items: views, nextCursor: "c"))
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: made, as: UTF8.self))
    }

    @Test(arguments: [true, false])
    func videoRowsMatchVideoViews(prefixed: Bool) throws {
        let storage: any MediaStorage = prefixed ? FileMediaStorage(root: "/tmp/unused") : SignedStorage()
        // Two leading columns stand for the user's columns of a joined row.
        let result = try db.query(
            """
            SELECT 'u' AS a, 1 AS b, * FROM (VALUES
              ('0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f13'::uuid, '5d3c1a2b-0000-4000-8000-000000000001'::uuid, 'cd/v.webp', 'cd/p.webp', \(Self.awkward), NULL, 'teal',
               1280, 720, 3::real, 'atelier-local', 7::bigint, 'succeeded', NULL, NULL::uuid, '2026-11-30 16:52:06.5+00'::timestamptz, 'local'),
              ('0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f14', '5d3c1a2b-0000-4000-8000-000000000001', NULL, NULL, 'b', 'noir', NULL,
               NULL, NULL, 2.5::real, NULL, NULL, 'queued', 'x\ty', '0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11', '2026-02-03 04:05:06.000001+00', NULL)
            ) AS t(id, user_id, storage_key, poster_key, prompt, style, colour, width, height, duration_seconds, model, seed, status,
                   error, generation_id, created_at, provider)
            """)
        let views = try result.rows.map { row in
            var reader = PostgresRow.Reader(row: row, from: 2)
            return VideoView(try VideoRecord(&reader), storage: storage)
        }
        let direct = JSONWriter.bytes(of: VideoRows(result.rows[...], from: 2, storage: storage))
        let made = JSONWriter.bytes(of: views)
        #expect(String(decoding: direct, as: UTF8.self) == String(decoding: made, as: UTF8.self))
        let cursor = try PageCursor(row: result.rows[1], from: 2, VideoRecord.self)
        #expect(cursor.id == "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f14")
        #expect(Timestamp.format(cursor.createdAt) == "2026-02-03T04:05:06.000001Z")
    }
}
