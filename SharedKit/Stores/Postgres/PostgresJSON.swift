public import SharedKitCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Values straight from PostgreSQL's bytes into a response (the listings' hot path): no String or Date in
/// between.
extension JSONWriter {
    /// A text column as a JSON string (null for NULL), from libpq's bytes.
    public mutating func text(_ row: PostgresRow, _ column: Int) {
        row.storage.withBytes(row: row.row, column: Int32(column)) { value in
            guard let value else { return null() }
            element()
            bytes.append(UInt8(ascii: "\""))
            Self.appendEscaped(value, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    /// An integer column as a JSON number (null for NULL): PostgreSQL's text form of an integer is one.
    public mutating func integer(_ row: PostgresRow, _ column: Int) {
        row.storage.withBytes(row: row.row, column: Int32(column)) { value in
            guard let value else { return null() }
            element()
            bytes.append(contentsOf: value)
        }
    }

    /// A timestamptz column as `value(_: Date)` writes it. The session's time zone is UTC, so the text is
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]+00`: its first 19 bytes are the time in whole seconds.
    public mutating func time(_ row: PostgresRow, _ column: Int) {
        let written: Bool = row.storage.withBytes(row: row.row, column: Int32(column)) { value in
            guard let value else {
                null()
                return true
            }
            guard value.count >= 22, value[4] == UInt8(ascii: "-"), value[10] == UInt8(ascii: " "),
                value[value.count - 3] == UInt8(ascii: "+"), value[value.count - 2] == UInt8(ascii: "0"),
                value[value.count - 1] == UInt8(ascii: "0")
            else { return false }
            element()
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[0..<10]))
            bytes.append(UInt8(ascii: "T"))
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: value[11..<19]))
            bytes.append(UInt8(ascii: "Z"))
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if !written {  // another zone or an era PostgreSQL writes differently: through Date
            self.value(try? row.storage.withBytes(row: row.row, column: Int32(column)) { try Date.decode(postgresBytes: $0) })
        }
    }

    /// A media URL: `prefix` and the key column's bytes (null when the key is NULL).
    public mutating func url(prefix: String, key row: PostgresRow, _ column: Int) {
        row.storage.withBytes(row: row.row, column: Int32(column)) { value in
            guard let value else { return null() }
            element()
            bytes.append(UInt8(ascii: "\""))
            var prefix = prefix
            prefix.withUTF8 { Self.appendEscaped($0, to: &bytes) }
            Self.appendEscaped(value, to: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
    }
}
