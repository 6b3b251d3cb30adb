#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import SharedKit

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
        Sample(text: awkward, count: 0, big: nil, flag: true, ratio: 2.0, when: Date(timeIntervalSince1970: 0),
               missing: nil, list: []),
        Sample(text: "", count: -42, big: Int64.max, flag: false, ratio: 2.5, when: Date(timeIntervalSince1970: 1_796_058_726.999_999),
               missing: "there", list: ["a", "b\"c", awkward]),
        Sample(text: "x", count: Int.min + 1, big: -7, flag: true, ratio: 0.1, when: Date(timeIntervalSince1970: 4_102_444_799.5),
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
            error: nil, generationId: "a1b2c3d4-0000-4000-8000-000000000002", createdAt: created, completedAt: nil)
    }

    @Test func listingsAreCanonical() throws {
        let storage = FileMediaStorage(root: "/tmp/unused")
        let images = [Self.image(storageKey: "ab/abcdef.webp"), Self.image(storageKey: nil)].map { ImageView($0, storage: storage) }
        try expectCanonical(Page(items: images, nextCursor: "eyJ9"))
        try expectCanonical(Page(items: [ImageView](), nextCursor: nil))

        let video = VideoRecord(
            id: "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f12", userId: "u", storageKey: "cd/v.webp", posterKey: nil, prompt: "a cat",
            style: nil, colour: "teal", width: 1280, height: 720, durationSeconds: 3.5, model: nil, seed: nil, status: "succeeded",
            error: nil, generationId: nil, createdAt: Self.created)
        try expectCanonical(Page(items: [VideoView(video, storage: storage)], nextCursor: nil))

        let generation = Generations.View(
            id: "g", task: "image", status: "failed", error: "The model said no.", cost: 1, refunded: true, imageIds: ["i1", "i2"],
            videoIds: [], createdAt: Self.created, startedAt: nil, completedAt: Self.created)
        try expectCanonical(generation)
        try expectCanonical(GenerationAnswer.queued(generation))
        try expectCanonical(GenerationAnswer.made(generation, image: images[0]))
        try expectCanonical(GenerationAnswer.made(generation, video: VideoView(video, storage: storage)))

        try expectCanonical([
            APIKeys.Listed(id: "k", name: "ci \"deploy\"", prefix: "atl_abcd", createdAt: Self.created, lastUsedAt: nil, revokedAt: Self.created),
            APIKeys.Listed(id: "k2", name: "n", prefix: "atl_efgh", createdAt: Self.created, lastUsedAt: Self.created, revokedAt: nil),
        ])
        try expectCanonical(UserView.Premium(active: false, until: nil))
        try expectCanonical(QuotaPolicy.State(used: 3, limit: 10, period: "day", periodStart: Self.created, renewsAt: Self.created))
    }

    @Test func jsonColumnsAreWrittenAsFoundationWritesThem() throws {
        let value: JSONValue = .object([
            "zeta": .number(1), "alpha": .array([.string("x/y"), .null, .bool(false), .number(2.5)]),
            "mid\"dle": .object(["b": .number(-3), "a": .string(Self.awkward)]),
        ])
        #expect(JSONWriter.bytes(of: value) == (try JSON.encode(value)))
    }
}
