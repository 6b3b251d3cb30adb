import SharedKitCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Decodes a row into a `Decodable` struct: each property reads the column of the same name in
/// snake_case; scalar types from their text form, anything else as a JSON column.
struct RowDecoder: Decoder {
    let row: PostgresRow
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] = [:]

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(RowContainer<Key>(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: [], debugDescription: "A row decodes into a keyed type only."))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw DecodingError.typeMismatch(Any.self, .init(codingPath: [], debugDescription: "A row decodes into a keyed type only."))
    }
}

private struct RowContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let row: PostgresRow
    var codingPath: [any CodingKey] = []
    var allKeys: [Key] { [] }

    private func column(_ key: Key) -> String { JSON.snakeCase(key.stringValue) }

    func contains(_ key: Key) -> Bool { row.has(column(key)) }

    func decodeNil(forKey key: Key) throws -> Bool { try row.text(column(key)) == nil }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try row.get(column(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try row.get(column(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try row.get(column(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try row.get(column(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try row.get(column(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try row.get(column(key)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let name = column(key)
        if let decodable = type as? any PostgresDecodable.Type {
            return try Self.decodeScalar(decodable, row: row, column: name) as! T
        }
        guard let text = try row.text(name) else {
            throw PostgresDecodingError(column: name, expected: "\(T.self) (got NULL)")
        }
        return try JSON.decoder().decode(T.self, from: Data(text.utf8))
    }

    private static func decodeScalar(_ type: any PostgresDecodable.Type, row: PostgresRow, column: String) throws -> Any {
        do {
            return try type.decode(postgresText: try row.text(column))
        } catch let error as PostgresDecodingError where error.column.isEmpty {
            throw PostgresDecodingError(column: column, expected: error.expected)
        }
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        throw DecodingError.typeMismatch(type, .init(codingPath: codingPath, debugDescription: "Nested containers are JSON columns."))
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: "Nested containers are JSON columns."))
    }

    func superDecoder() throws -> any Decoder { RowDecoder(row: row) }
    func superDecoder(forKey key: Key) throws -> any Decoder { RowDecoder(row: row) }
}
