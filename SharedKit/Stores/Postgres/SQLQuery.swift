/// SQL written by string interpolation: every interpolated value becomes a `$n` placeholder and a bound
/// parameter, so a value can never change the statement. The one way to splice text into SQL is the
/// explicitly named `unsafeSQL:` interpolation, for identifiers and fragments the code itself chooses.
public struct SQLQuery: ExpressibleByStringInterpolation, Sendable, CustomStringConvertible {
    public private(set) var sql: String
    /// Parameters in text format; nil is SQL NULL.
    public private(set) var binds: [String?]

    public init(unsafeSQL sql: String) {
        self.sql = sql
        self.binds = []
    }

    public init(stringLiteral value: String) {
        self.init(unsafeSQL: value)
    }

    public init(stringInterpolation: StringInterpolation) {
        sql = stringInterpolation.sql
        binds = stringInterpolation.binds
    }

    /// The statement only: parameters never appear in descriptions or logs.
    public var description: String { sql }

    /// Appends another query, renumbering its placeholders after this one's.
    public mutating func append(_ other: SQLQuery) {
        sql += Self.renumber(other.sql, offset: binds.count)
        binds += other.binds
    }

    public static func + (lhs: SQLQuery, rhs: SQLQuery) -> SQLQuery {
        var copy = lhs
        copy.append(rhs)
        return copy
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var sql = ""
        var binds: [String?] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
        }

        public mutating func appendLiteral(_ literal: String) {
            sql += literal
        }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T) {
            binds.append(value.postgresText)
            sql += "$\(binds.count)"
        }

        public mutating func appendInterpolation<T: PostgresEncodable>(_ value: T?) {
            binds.append(value?.postgresText)
            sql += "$\(binds.count)"
        }

        /// A fragment built elsewhere with its own parameters.
        public mutating func appendInterpolation(_ fragment: SQLQuery) {
            sql += SQLQuery.renumber(fragment.sql, offset: binds.count)
            binds += fragment.binds
        }

        /// Text spliced into the statement as written. Never pass user input.
        public mutating func appendInterpolation(unsafeSQL text: String) {
            sql += text
        }
    }

    /// Shifts every `$n` by `offset`, byte by byte (SQL text is ASCII where it matters; other bytes pass).
    static func renumber(_ sql: String, offset: Int) -> String {
        guard offset > 0, sql.utf8.contains(UInt8(ascii: "$")) else { return sql }
        let bytes = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "$") {
                var end = index + 1
                var number = 0
                while end < bytes.count, bytes[end] >= 0x30, bytes[end] <= 0x39 {
                    number = number * 10 + Int(bytes[end] - 0x30)
                    end += 1
                }
                if end > index + 1 {
                    out.append(UInt8(ascii: "$"))
                    out.append(contentsOf: String(number + offset).utf8)
                    index = end
                    continue
                }
            }
            out.append(byte)
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
