#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A value that writes itself as JSON, in the API's dialect (snake_case keys in sorted order, ISO 8601
/// times in whole seconds, explicit nulls, unescaped slashes) — the bytes `JSON.encoder()` would make,
/// without its boxing, dynamic casts and key conversion. The listings and everything that embeds their
/// items write themselves this way; a type lists its keys in sorted order (the tests check it).
public protocol JSONWritable {
    func write(to json: inout JSONWriter)
}

/// Appends JSON to one growing UTF-8 buffer. Keys are static strings the code chooses (already snake_case,
/// never escaped); values are escaped as Foundation's encoder escapes them.
public struct JSONWriter {
    public package(set) var bytes: [UInt8]
    /// Whether the next member or element needs a comma before it.
    private var separate = false

    public init(capacity: Int = 2048) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// The bytes of one value.
    public static func bytes(of value: some JSONWritable) -> [UInt8] {
        var json = JSONWriter()
        value.write(to: &json)
        return json.bytes
    }

    // MARK: Containers

    /// `{…}`: `body` writes the members with `field`.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        open(UInt8(ascii: "{"))
        body(&self)
        close(UInt8(ascii: "}"))
    }

    /// `[…]` of writable items.
    public mutating func array<S: Sequence>(_ items: S) where S.Element: JSONWritable {
        open(UInt8(ascii: "["))
        for item in items { item.write(to: &self) }
        close(UInt8(ascii: "]"))
    }

    /// `[…]` of strings.
    public mutating func array(_ items: [String]) {
        open(UInt8(ascii: "["))
        for item in items { value(item) }
        close(UInt8(ascii: "]"))
    }

    private mutating func open(_ bracket: UInt8) {
        if separate { bytes.append(UInt8(ascii: ",")) }
        bytes.append(bracket)
        separate = false
    }

    private mutating func close(_ bracket: UInt8) {
        bytes.append(bracket)
        separate = true
    }

    // MARK: Members

    /// A member's key; its value follows.
    public mutating func key(_ name: StaticString) {
        if separate { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        separate = false
    }

    /// A key made at run time (a JSON column's own keys): escaped like any string.
    public mutating func key(_ name: String) {
        if separate { bytes.append(UInt8(ascii: ",")) }
        writeString(name)
        bytes.append(UInt8(ascii: ":"))
        separate = false
    }

    public mutating func field(_ name: StaticString, _ value: String?) { key(name); self.value(value) }
    public mutating func field(_ name: StaticString, _ value: Int?) { key(name); self.value(value) }
    public mutating func field(_ name: StaticString, _ value: Int64?) { key(name); self.value(value.map { Int($0) }) }
    public mutating func field(_ name: StaticString, _ value: Bool?) { key(name); self.value(value) }
    public mutating func field(_ name: StaticString, _ value: Double?) { key(name); self.value(value) }
    public mutating func field(_ name: StaticString, _ value: Date?) { key(name); self.value(value) }
    public mutating func field(_ name: StaticString, _ value: (some JSONWritable)?) {
        key(name)
        if let value { value.write(to: &self) } else { null() }
    }
    public mutating func field(_ name: StaticString, _ items: [String]) { key(name); array(items) }
    // MARK: Values

    package mutating func element() {
        if separate { bytes.append(UInt8(ascii: ",")) }
        separate = true
    }

    public mutating func null() {
        element()
        append("null")
    }

    public mutating func value(_ value: String?) {
        guard let value else { return null() }
        element()
        writeString(value)
    }

    public mutating func value(_ value: Bool?) {
        guard let value else { return null() }
        element()
        append(value ? "true" : "false")
    }

    public mutating func value(_ value: Int?) {
        guard let value else { return null() }
        element()
        writeInteger(value)
    }

    /// Whole numbers without a fraction (`2`, as Foundation writes `2.0`), others in Swift's shortest form.
    public mutating func value(_ value: Double?) {
        guard let value else { return null() }
        if value == value.rounded(), abs(value) < 1e15 { return self.value(Int(value)) }
        element()
        bytes.append(contentsOf: value.description.utf8)
    }

    /// `2026-11-30T16:52:06Z`: UTC, whole seconds (the fraction is dropped, as Foundation's `.iso8601` does).
    public mutating func value(_ value: Date?) {
        guard let value else { return null() }
        element()
        var seconds = time_t(value.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        bytes.append(UInt8(ascii: "\""))
        digits(Int(parts.tm_year) + 1900, width: 4)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, width: 2)
        bytes.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), width: 2)
        bytes.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), width: 2)
        bytes.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), width: 2)
        bytes.append(UInt8(ascii: "Z"))
        bytes.append(UInt8(ascii: "\""))
    }

    // MARK: Bytes

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func digits(_ value: Int, width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }

    private mutating func writeInteger(_ value: Int) {
        if value == 0 { return bytes.append(UInt8(ascii: "0")) }
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        // Digits from the least significant, written backwards into a fixed scratch area.
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 2^64's 20 digits
        var magnitude = value.magnitude
        withUnsafeMutableBytes(of: &scratch) { buffer in
            var index = buffer.count
            while magnitude > 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            bytes.append(contentsOf: buffer[index...])
        }
    }

    /// Escapes `"`, `\` and the control characters; everything else (slashes, non-ASCII) as it is.
    private mutating func writeString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { Self.appendEscaped($0, to: &bytes) }
        bytes.append(UInt8(ascii: "\""))
    }

    package static func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to bytes: inout [UInt8]) {
        var start = 0
        var index = 0
        let count = utf8.count
        while index < count {
            // Eight bytes at a time while none needs escaping (the usual case: prompts, ids, URLs).
            if index + 8 <= count {
                let word = UnsafeRawPointer(utf8.baseAddress! + index).loadUnaligned(as: UInt64.self)
                if !Self.needsEscape(word) {
                    index += 8
                    continue
                }
            }
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
            index += 1
            start = index
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            default:
                bytes.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                    hex[Int(byte >> 4)], hex[Int(byte & 0x0F)],
                ])
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<count]))
    }

    /// Whether any of eight bytes is a control character, `"` or `\` (bytes of multi-byte UTF-8
    /// sequences are ≥ 0x80 and never match).
    @inline(__always)
    private static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ x: UInt64) -> Bool { (x &- ones) & ~x & high != 0 }
        let control = (word &- ones &* 0x20) & ~word & high != 0
        return control || hasZero(word ^ (ones &* 0x22)) || hasZero(word ^ (ones &* 0x5C))
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)
}

extension Array: JSONWritable where Element: JSONWritable {
    public func write(to json: inout JSONWriter) { json.array(self) }
}
