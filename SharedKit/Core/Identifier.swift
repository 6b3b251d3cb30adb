/// A row's id: a UUID, held in its canonical lowercase text, checked once where it comes in (a path, a
/// body, a form, a provider's metadata) and typed by what it names (`ID<User>`, `ID<ImageRecord>`), so
/// an image's id cannot be passed where a user's is meant and no use site checks the text again.
/// Anything that is not a UUID never becomes one: to a lookup it is "not found", not a database error.
public struct ID<Entity>: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
    public let text: String

    /// Nil unless `text` is a UUID in its 36-character form (either case).
    public init?(_ text: String) {
        guard Self.isUUID(text) else { return nil }
        self.text = text.lowercased()
    }

    /// The same id naming another kind of row (a generation's id is its images' `generation_id`).
    public init<Other>(_ other: ID<Other>) {
        self.text = other.text
    }

    public var description: String { text }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let id = Self(try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a UUID")
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    static func isUUID(_ text: String) -> Bool {
        guard text.utf8.count == 36 else { return false }
        for (i, c) in text.utf8.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return false }
            } else if !((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)) {
                return false
            }
        }
        return true
    }
}

extension ID: JSONWritable {
    public func write(to json: inout JSONWriter) { json.value(text) }
}
