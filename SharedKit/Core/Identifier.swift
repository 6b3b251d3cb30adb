/// A row's id: a UUID, held in its canonical lowercase text, checked once where it comes in (a path, a
/// body, a form, a provider's metadata) and typed by what it names (`ID<User>`, `ID<ImageRecord>`), so
/// an image's id cannot be passed where a user's is meant and no use site checks the text again.
/// Anything that is not a UUID never becomes one: to a lookup it is "not found", not a database error.
public struct ID<Entity>: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
    public let text: String

    /// Nil unless `text` is a UUID in its 36-character form (either case).
    public init?(_ text: String) {
        var text = text
        let form = text.withUTF8 { Self.form(of: $0) }
        switch form {
        case .lowercase: self.text = text
        case .mixedCase: self.text = text.lowercased()
        case nil: return nil
        }
    }

    /// From the bytes PostgreSQL writes for a `uuid` (always lowercase): one check, one string.
    package init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        switch Self.form(of: bytes) {
        case .lowercase: self.text = String(decoding: bytes, as: UTF8.self)
        case .mixedCase: self.text = String(decoding: bytes, as: UTF8.self).lowercased()
        case nil: return nil
        }
    }

    /// The same UUID seen as another kind of id: a page cursor keeps the last image or video it showed.
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

    enum Form { case lowercase, mixedCase }

    /// Whether `bytes` are 8-4-4-4-12 hex digits, and whether any of them is upper case.
    static func form(of bytes: UnsafeBufferPointer<UInt8>) -> Form? {
        guard bytes.count == 36 else { return nil }
        var upper = false
        for i in 0..<36 {
            let c = bytes[i]
            if i == 8 || i == 13 || i == 18 || i == 23 {
                if c != UInt8(ascii: "-") { return nil }
            } else if (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) {
                continue
            } else if c >= 0x41 && c <= 0x46 {
                upper = true
            } else {
                return nil
            }
        }
        return upper ? .mixedCase : .lowercase
    }
}

extension ID: JSONWritable {
    public func write(to json: inout JSONWriter) { json.value(text) }
}
