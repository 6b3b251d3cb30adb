import CSodium

/// Randomness from libsodium's CSPRNG (getrandom on Linux).
public enum Random {
    /// Idempotent; the runtime calls it before the first request.
    public static func initialise() {
        if sodium_init() < 0 { fatalError("libsodium could not be initialised") }
    }

    public static func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
        return bytes
    }

    public static func hex(byteCount: Int) -> String { Encoding.hex(bytes(byteCount)) }

    /// A URL- and cookie-safe token with `byteCount` bytes of entropy.
    public static func token(byteCount: Int = 32) -> String { Encoding.base64URL(bytes(byteCount)) }

    /// A uniformly distributed integer in 0..<upperBound.
    public static func uniform(_ upperBound: UInt32) -> UInt32 { randombytes_uniform(upperBound) }
}
