import CSodium

/// Hex and base64 through libsodium (constant-time codecs).
public enum Encoding {
    public static func hex(_ bytes: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: bytes.count * 2 + 1)
        _ = bytes.withUnsafeBufferPointer { sodium_bin2hex(&out, out.count, $0.baseAddress, bytes.count) }
        return String(nulTerminated: out)
    }

    public static func fromHex(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 2 == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: text.utf8.count / 2)
        var length = 0
        let ok = sodium_hex2bin(&out, out.count, text, text.utf8.count, nil, &length, nil)
        return ok == 0 && length == out.count ? out : nil
    }

    public static func base64(_ bytes: [UInt8]) -> String { encode64(bytes, sodium_base64_VARIANT_ORIGINAL) }

    /// Base64url without padding (tokens, cookies).
    public static func base64URL(_ bytes: [UInt8]) -> String { encode64(bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING) }

    public static func fromBase64(_ text: String) -> [UInt8]? { decode64(text, sodium_base64_VARIANT_ORIGINAL) }

    public static func fromBase64URL(_ text: String) -> [UInt8]? { decode64(text, sodium_base64_VARIANT_URLSAFE_NO_PADDING) }

    private static func encode64(_ bytes: [UInt8], _ variant: Int32) -> String {
        let size = sodium_base64_encoded_len(bytes.count, variant)
        var out = [CChar](repeating: 0, count: size)
        bytes.withUnsafeBufferPointer { _ = sodium_bin2base64(&out, size, $0.baseAddress, bytes.count, variant) }
        return String(nulTerminated: out)
    }

    private static func decode64(_ text: String, _ variant: Int32) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: text.utf8.count * 3 / 4 + 3)
        var length = 0
        let ok = sodium_base642bin(&out, out.count, text, text.utf8.count, nil, &length, nil, variant)
        return ok == 0 ? Array(out[..<length]) : nil
    }
}

extension String {
    /// The text of a NUL-terminated C buffer (what libsodium and inet_ntop fill in), up to its first NUL.
    package init(nulTerminated buffer: [CChar]) {
        let end = buffer.firstIndex(of: 0) ?? buffer.endIndex
        self = buffer[..<end].withUnsafeBufferPointer { chars in
            chars.withMemoryRebound(to: UInt8.self) { String(decoding: $0, as: UTF8.self) }
        }
    }
}
