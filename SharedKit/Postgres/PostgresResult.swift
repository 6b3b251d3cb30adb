import CPostgres

/// The rows of one statement, read eagerly into Swift strings so the `PGresult` is freed at once.
public struct PostgresResult: Sendable {
    public let columns: [String]
    public let rows: [PostgresRow]
    public let affectedRows: Int

    init(_ result: OpaquePointer?) {
        guard let result else {
            columns = []
            rows = []
            affectedRows = 0
            return
        }
        defer { PQclear(result) }
        let columnCount = Int(PQnfields(result))
        let names = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var index: [String: Int] = [:]
        for (i, name) in names.enumerated() where index[name] == nil { index[name] = i }
        let rowCount = Int(PQntuples(result))
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            rows.append(PostgresRow(index: index, values: values))
        }
        self.columns = names
        self.rows = rows
        let tuples = PQcmdTuples(result).map { String(cString: $0) } ?? ""
        self.affectedRows = Int(tuples) ?? rowCount
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

/// One row; columns are read by name.
public struct PostgresRow: Sendable {
    let index: [String: Int]
    let values: [String?]

    public func has(_ column: String) -> Bool { index[column] != nil }

    /// The text of a column (nil for NULL).
    public func text(_ column: String) throws -> String? {
        guard let position = index[column] else { throw PostgresDecodingError(column: column, expected: "an existing column") }
        return values[position]
    }

    public func get<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws -> T {
        do {
            return try T.decode(postgresText: try text(column))
        } catch let error as PostgresDecodingError where error.column.isEmpty {
            throw PostgresDecodingError(column: column, expected: error.expected)
        }
    }

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try T(from: RowDecoder(row: self))
    }

    /// Reads a row's columns in order, from `start` (a record after other columns in a joined row).
    public struct Reader {
        let row: PostgresRow
        public private(set) var position: Int

        public init(row: PostgresRow, from start: Int = 0) {
            self.row = row
            position = start
        }

        /// The next column's text (nil for NULL).
        public mutating func text() throws -> String? {
            guard position < row.values.count else {
                throw PostgresDecodingError(column: "#\(position + 1)", expected: "a column (the row has \(row.values.count))")
            }
            defer { position += 1 }
            return row.values[position]
        }

        public mutating func next<T: PostgresDecodable>(_ type: T.Type = T.self) throws -> T {
            let column = position + 1
            do {
                return try T.decode(postgresText: try text())
            } catch let error as PostgresDecodingError where error.column.isEmpty {
                throw PostgresDecodingError(column: "#\(column)", expected: error.expected)
            }
        }
    }
}
