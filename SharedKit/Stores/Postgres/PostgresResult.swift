import CPostgres

#if canImport(Glibc)
import Glibc
#endif

/// The `PGresult` of one statement, freed when the last row read from it goes. Values are read from it
/// when asked for, so a column nobody reads costs nothing (the listings read each column once).
///
/// `@unchecked Sendable`: a `PGresult` is never changed after libpq hands it over, and reading it is safe
/// from any thread.
final class PostgresResultStorage: @unchecked Sendable {
    let result: OpaquePointer?
    let columnCount: Int32

    init(_ result: OpaquePointer?) {
        self.result = result
        columnCount = result.map { PQnfields($0) } ?? 0
    }

    deinit {
        if let result { PQclear(result) }
    }

    /// The position of the first column with this name.
    func position(of name: String) -> Int32? {
        guard let result else { return nil }
        for column in 0..<columnCount where strcmp(PQfname(result, column), name) == 0 { return column }
        return nil
    }

    /// A value's bytes in text format, nil for NULL.
    @inline(__always)
    func withBytes<R>(row: Int32, column: Int32, _ body: (UnsafeBufferPointer<UInt8>?) throws -> R) rethrows -> R {
        guard let result, PQgetisnull(result, row, column) == 0, let value = PQgetvalue(result, row, column) else {
            return try body(nil)
        }
        return try value.withMemoryRebound(to: UInt8.self, capacity: Int(PQgetlength(result, row, column))) {
            try body(UnsafeBufferPointer(start: $0, count: Int(PQgetlength(result, row, column))))
        }
    }
}

/// The rows of one statement.
public struct PostgresResult: Sendable {
    let storage: PostgresResultStorage
    public let rows: [PostgresRow]
    public let affectedRows: Int

    init(_ result: OpaquePointer?) {
        let storage = PostgresResultStorage(result)
        self.storage = storage
        guard let result else {
            rows = []
            affectedRows = 0
            return
        }
        let rowCount = PQntuples(result)
        rows = (0..<rowCount).map { PostgresRow(storage: storage, row: $0) }
        let tuples = PQcmdTuples(result).map { String(cString: $0) } ?? ""
        affectedRows = Int(tuples) ?? Int(rowCount)
    }

    /// The column names, in order.
    public var columns: [String] {
        guard let result = storage.result else { return [] }
        return (0..<storage.columnCount).map { String(cString: PQfname(result, $0)) }
    }

    public var first: PostgresRow? { rows.first }
    public var isEmpty: Bool { rows.isEmpty }

    /// Decodes every row into a `Decodable` type whose properties name the columns (camelCase ↔ snake_case).
    public func decode<T: Decodable>(_ type: T.Type) throws -> [T] {
        try rows.map { try $0.decode(type) }
    }

    /// Reads every row into a record that takes its columns in order (the hot paths: no key lookups).
    public func records<T: PostgresRecord>(_ type: T.Type) throws -> [T] {
        try rows.map { row in
            var reader = PostgresRow.Reader(row: row)
            return try T(&reader)
        }
    }
}

/// A row type read column by column in the order of its SELECT list (`columns`), without the
/// Decodable machinery: the records of the listings and the signed-in user.
public protocol PostgresRecord {
    init(_ row: inout PostgresRow.Reader) throws
}

/// One row; columns are read by name, or in order with a `Reader`.
public struct PostgresRow: Sendable {
    let storage: PostgresResultStorage
    let row: Int32

    public func has(_ column: String) -> Bool { storage.position(of: column) != nil }

    /// The text of a column (nil for NULL).
    public func text(_ column: String) throws -> String? {
        guard let position = storage.position(of: column) else {
            throw PostgresDecodingError(column: column, expected: "an existing column")
        }
        return storage.withBytes(row: row, column: position) { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    public func get<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        guard let position = storage.position(of: column) else {
            throw PostgresDecodingError(column: column, expected: "an existing column")
        }
        do {
            return try storage.withBytes(row: row, column: position) { try T.decode(postgresBytes: $0) }
        } catch let error as PostgresDecodingError where error.column.isEmpty {
            throw PostgresDecodingError(column: column, expected: error.expected)
        }
    }

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: RowDecoder(row: self))
    }

    /// The value of the column at a position.
    public func get<T: PostgresDecodable>(_ position: Int, as type: T.Type = T.self) throws -> T {
        var reader = Reader(row: self, from: position)
        return try reader.next(type)
    }

    /// Reads a row's columns in order, from `start` (a record after other columns in a joined row).
    public struct Reader {
        let row: PostgresRow
        public private(set) var position: Int

        public init(row: PostgresRow, from start: Int = 0) {
            self.row = row
            position = start
        }

        /// Whether the next column is NULL (without moving past it).
        public func nextIsNull() throws -> Bool {
            try check()
            return row.storage.withBytes(row: row.row, column: Int32(position)) { $0 == nil }
        }

        public mutating func next<T: PostgresDecodable>(_ type: T.Type = T.self) throws -> T {
            try check()
            defer { position += 1 }
            do {
                return try row.storage.withBytes(row: row.row, column: Int32(position)) { try T.decode(postgresBytes: $0) }
            } catch let error as PostgresDecodingError where error.column.isEmpty {
                throw PostgresDecodingError(column: "#\(position + 1)", expected: error.expected)
            }
        }

        private func check() throws {
            guard position < Int(row.storage.columnCount) else {
                throw PostgresDecodingError(column: "#\(position + 1)", expected: "a column (the row has \(row.storage.columnCount))")
            }
        }
    }
}
