public import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A value that can be bound as a query parameter, in PostgreSQL's text format.
public protocol PostgresEncodable: Sendable {
    var postgresText: String { get }
}

/// A value that can be read from a result column in text format; `nil` text is SQL NULL.
public protocol PostgresDecodable {
    static func decode(postgresText: String?) throws -> Self
    /// The same from the value's bytes as libpq holds them (nil for NULL): numbers, flags and times are
    /// read in place, without a String in between.
    static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Self
}

extension PostgresDecodable {
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Self {
        try decode(postgresText: postgresBytes.map { String(decoding: $0, as: UTF8.self) })
    }
}

/// An integer in text format from its bytes: an optional sign and digits, nothing else, no overflow.
func parseInteger(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
    var index = 0
    var negative = false
    if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
        negative = first == UInt8(ascii: "-")
        index = 1
    }
    guard index < bytes.count else { return nil }
    var value = 0
    while index < bytes.count {
        let digit = bytes[index] &- UInt8(ascii: "0")
        guard digit < 10 else { return nil }
        let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = negative ? times.subtractingReportingOverflow(Int(digit)) : times.addingReportingOverflow(Int(digit))
        guard !overflow1, !overflow2 else { return nil }
        value = sum
        index += 1
    }
    return value
}

public struct PostgresDecodingError: Error, CustomStringConvertible {
    public let column: String
    public let expected: String
    public var description: String { "column \(column): cannot read as \(expected)" }
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self }
    public static func decode(postgresText: String?) throws -> String {
        guard let postgresText else { throw PostgresDecodingError(column: "", expected: "String (got NULL)") }
        return postgresText
    }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public static func decode(postgresText: String?) throws -> Int {
        guard let text = postgresText, let value = Int(text) else { throw PostgresDecodingError(column: "", expected: "Int") }
        return value
    }
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Int {
        guard let bytes = postgresBytes, let value = parseInteger(bytes) else { throw PostgresDecodingError(column: "", expected: "Int") }
        return value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public static func decode(postgresText: String?) throws -> Int64 {
        guard let text = postgresText, let value = Int64(text) else { throw PostgresDecodingError(column: "", expected: "Int64") }
        return value
    }
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Int64 {
        guard let bytes = postgresBytes, let value = parseInteger(bytes) else { throw PostgresDecodingError(column: "", expected: "Int64") }
        return Int64(value)
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public static func decode(postgresText: String?) throws -> Int32 {
        guard let text = postgresText, let value = Int32(text) else { throw PostgresDecodingError(column: "", expected: "Int32") }
        return value
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { String(self) }
    public static func decode(postgresText: String?) throws -> Double {
        guard let text = postgresText, let value = Double(text) else { throw PostgresDecodingError(column: "", expected: "Double") }
        return value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { self ? "true" : "false" }
    public static func decode(postgresText: String?) throws -> Bool {
        switch postgresText {
        case "t", "true": return true
        case "f", "false": return false
        default: throw PostgresDecodingError(column: "", expected: "Bool")
        }
    }
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Bool {
        guard let bytes = postgresBytes, bytes.count == 1 else {
            return try decode(postgresText: postgresBytes.map { String(decoding: $0, as: UTF8.self) })
        }
        switch bytes[0] {
        case UInt8(ascii: "t"): return true
        case UInt8(ascii: "f"): return false
        default: throw PostgresDecodingError(column: "", expected: "Bool")
        }
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(postgresText: String?) throws -> Wrapped? {
        guard let postgresText else { return nil }
        return try Wrapped.decode(postgresText: postgresText)
    }
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Wrapped? {
        guard let postgresBytes else { return nil }
        return try Wrapped.decode(postgresBytes: postgresBytes)
    }
}

/// `timestamptz` as a `Date`. Sessions are set to UTC and ISO DateStyle, so the text is
/// `2026-11-25 16:50:51.123456+00`.
extension Date: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { Timestamp.format(self) }
    public static func decode(postgresText: String?) throws -> Date {
        guard let text = postgresText, let date = Timestamp.parse(text) else {
            throw PostgresDecodingError(column: "", expected: "timestamptz")
        }
        return date
    }
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> Date {
        guard let bytes = postgresBytes, let date = Timestamp.parse(utf8: bytes) else {
            throw PostgresDecodingError(column: "", expected: "timestamptz")
        }
        return date
    }
}

/// `bytea` in hex format.
public struct PostgresBytes: PostgresEncodable, PostgresDecodable, Equatable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var postgresText: String { "\\x" + Encoding.hex(bytes) }
    public static func decode(postgresText: String?) throws -> PostgresBytes {
        guard let text = postgresText, text.hasPrefix("\\x"), let bytes = Encoding.fromHex(String(text.dropFirst(2))) else {
            throw PostgresDecodingError(column: "", expected: "bytea")
        }
        return PostgresBytes(bytes)
    }
}

/// A `json`/`jsonb` value holding any Codable type.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresEncodable, PostgresDecodable, Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
    public var postgresText: String { String(decoding: (try? JSON.encode(value)) ?? Array("null".utf8), as: UTF8.self) }
    public static func decode(postgresText: String?) throws -> PostgresJSON<Value> {
        guard let text = postgresText else { throw PostgresDecodingError(column: "", expected: "json") }
        return PostgresJSON(try JSON.decoder().decode(Value.self, from: Data(text.utf8)))
    }
}

/// A one-dimensional `text[]` literal.
extension Array: PostgresEncodable where Element == String {
    public var postgresText: String {
        "{"
            + map { "\"" + $0.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}

/// A `json`/`jsonb` (or JSON text) column of any shape, read as a JSON value.
extension JSONValue: PostgresDecodable {
    public static func decode(postgresText: String?) throws -> JSONValue {
        guard var text = postgresText else { throw PostgresDecodingError(column: "", expected: "json") }
        return try text.withUTF8 { try decode(postgresBytes: $0) }
    }

    /// PostgreSQL's own JSON, parsed in place (`JSONValue.parse`), not through Foundation's decoder.
    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> JSONValue {
        guard let bytes = postgresBytes, let value = JSONValue.parse(bytes) else {
            throw PostgresDecodingError(column: "", expected: "json")
        }
        return value
    }
}

/// A typed id binds as its text (PostgreSQL casts it to `uuid`) and reads from a `uuid` column; a column
/// that holds anything else is a decoding error, not an id.
extension ID: PostgresEncodable, PostgresDecodable {
    public var postgresText: String { text }

    public static func decode(postgresText: String?) throws -> ID<Entity> {
        guard let text = postgresText, let id = ID(text) else {
            throw PostgresDecodingError(column: "", expected: "a UUID")
        }
        return id
    }

    public static func decode(postgresBytes: UnsafeBufferPointer<UInt8>?) throws -> ID<Entity> {
        guard let bytes = postgresBytes, let id = ID(utf8: bytes) else {
            throw PostgresDecodingError(column: "", expected: "a UUID")
        }
        return id
    }
}
