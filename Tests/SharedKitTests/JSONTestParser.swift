@testable import SharedKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Reads response bodies in tests: a flat decode to `[String: Any]` via `Decodable` values.
enum JSONTestParser {
    indirect enum Value: Decodable {
        case string(String), number(Double), bool(Bool), object([String: Value]), array([Value]), null

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let b = try? container.decode(Bool.self) {
                self = .bool(b)
            } else if let n = try? container.decode(Double.self) {
                self = .number(n)
            } else if let s = try? container.decode(String.self) {
                self = .string(s)
            } else if let a = try? container.decode([Value].self) {
                self = .array(a)
            } else {
                self = .object(try container.decode([String: Value].self))
            }
        }

        var any: Any {
            switch self {
            case .string(let s): return s
            case .number(let n): return n
            case .bool(let b): return b
            case .object(let o): return o.mapValues { $0.any }
            case .array(let a): return a.map { $0.any }
            case .null: return NSNullLike()
            }
        }
    }

    struct NSNullLike {}

    static func object(_ bytes: [UInt8]) throws -> [String: Any] {
        guard !bytes.isEmpty else { return [:] }
        guard case .object(let object) = try JSONDecoder().decode(Value.self, from: Data(bytes)) else { return [:] }
        return object.mapValues { $0.any }
    }

    static func errorCode(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["code"] as? String }
    static func errorMessage(_ body: [String: Any]) -> String? { (body["error"] as? [String: Any])?["message"] as? String }
}
