import Synchronization

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The one JSON dialect of the API: snake_case keys, ISO 8601 dates.
public enum JSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        // Our own ASCII conversion: Foundation's convertToSnakeCase consults Unicode properties for every
        // character of every key and was the largest cost of a gallery page (perf).
        // A response repeats the same few keys for every item, so each encoder remembers its conversions.
        let names = KeyNames()
        encoder.keyEncodingStrategy = .custom { path in names.key(for: path.last!.stringValue) }
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        // ISO 8601 with or without fractions and offsets, or a plain date (midnight UTC).
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            let full = text.utf8.count == 10 ? text + "T00:00:00Z" : text
            guard full.utf8.count >= 19, let date = Timestamp.parse(full) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 date")
            }
            return date
        }
        return decoder
    }

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder().encode(value))
    }

    /// `createdAt` → `created_at`. Swift property names here are ASCII; bytes are compared directly.
    package static func snakeCase(_ name: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count + 4)
        for byte in name.utf8 {
            if byte >= 0x41, byte <= 0x5A {
                if !out.isEmpty { out.append(0x5F) }
                out.append(byte + 0x20)
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The snake_case keys one encoder has made. JSONEncoder may call its key strategy from any thread,
    /// so the table is behind a lock (uncontended: one encoder serves one response).
    final class KeyNames: Sendable {
        let made = Mutex<[String: SnakeKey]>([:])

        func key(for name: String) -> SnakeKey {
            made.withLock { made in
                if let key = made[name] { return key }
                let key = SnakeKey(JSON.snakeCase(name))
                made[name] = key
                return key
            }
        }
    }

    struct SnakeKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ value: String) { stringValue = value }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }
}
