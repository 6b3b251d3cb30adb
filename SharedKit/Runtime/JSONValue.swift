/// Any JSON value, for provider payloads whose shape depends on the model.
public enum JSONValue: Codable, Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case object([String: JSONValue])
    case array([JSONValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 1e15 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .bool(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public subscript(key: String) -> JSONValue? { if case .object(let o) = self { return o[key] }; return nil }
}

extension JSONValue: JSONWritable {
    /// The bytes `JSON.encoder()` makes of it: object keys sorted, whole numbers without a fraction.
    public func write(to json: inout JSONWriter) {
        switch self {
        case .string(let value): json.value(value)
        case .number(let value): json.value(value)
        case .bool(let value): json.value(value)
        case .null: json.null()
        case .array(let items): json.array(items)
        case .object(let members):
            json.object { o in
                for name in members.keys.sorted() {
                    o.key(name)
                    members[name]!.write(to: &o)
                }
            }
        }
    }
}
