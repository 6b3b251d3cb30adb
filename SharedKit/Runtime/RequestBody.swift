public import SharedKitCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Request bodies in the API's JSON dialect: every decoding failure is a 400 that names the field.
extension JSON {
    /// Decodes a request body, turning every decoding failure into a 400 that names the field.
    public static func decodeBody<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw HTTPError(.badRequest, code: "invalid_json", message: "The request body is empty; a JSON object is expected.")
        }
        // PostgreSQL text (and jsonb) cannot hold NUL, so no field of any body may carry one.
        if containsEscapedNUL(bytes) || bytes.contains(0) {
            throw HTTPError(.badRequest, code: "invalid_json", message: "Text in the request cannot contain NUL characters (\\u0000).")
        }
        do {
            return try decoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    /// `\u0000` in any case, not preceded by an escaping backslash.
    static func containsEscapedNUL(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 6 else { return false }
        var i = 0
        while i + 5 < bytes.count {
            if bytes[i] == 0x5C {  // backslash: look at what it escapes, then skip it
                if bytes[i + 1] == 0x75 || bytes[i + 1] == 0x55, bytes[i + 2] == 0x30, bytes[i + 3] == 0x30, bytes[i + 4] == 0x30,
                    bytes[i + 5] == 0x30
                {
                    return true
                }
                i += 2
                continue
            }
            i += 1
        }
        return false
    }

    static func describe(_ error: DecodingError) -> HTTPError {
        switch error {
        case .keyNotFound(let key, let context):
            let field = fieldName(context.codingPath + [key])
            return HTTPError(.badRequest, code: "missing_field", message: "The field '\(field)' is required.")
        case .valueNotFound(_, let context):
            let field = fieldName(context.codingPath)
            return HTTPError(.badRequest, code: "invalid_field", message: "The field '\(field)' must not be null.")
        case .typeMismatch(let type, let context):
            let field = fieldName(context.codingPath)
            if field.isEmpty {
                return HTTPError(.badRequest, code: "invalid_json", message: "The request body must be a JSON object.")
            }
            return HTTPError(.badRequest, code: "invalid_field", message: "The field '\(field)' must be \(typeName(type)).")
        case .dataCorrupted(let context):
            let field = fieldName(context.codingPath)
            if field.isEmpty {
                return HTTPError(.badRequest, code: "invalid_json", message: "The request body is not valid JSON.")
            }
            return HTTPError(.badRequest, code: "invalid_field", message: "The field '\(field)' has an invalid value.")
        @unknown default:
            return HTTPError(.badRequest, code: "invalid_json", message: "The request body could not be read as JSON.")
        }
    }

    /// The dotted JSON path of a coding path, in the wire's snake_case.
    static func fieldName(_ path: [any CodingKey]) -> String {
        path.map { key in key.intValue.map { "[\($0)]" } ?? snakeCase(key.stringValue) }
            .joined(separator: ".")
            .replacing(".[", with: "[")
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is [Any].Type: return "an array"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a valid value"
        }
    }
}
