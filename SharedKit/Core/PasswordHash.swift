import CSodium

/// argon2id password hashing (libsodium's `crypto_pwhash_str`, PHC string format).
public struct PasswordHasher: Sendable {
    /// Memory in bytes and passes; the OWASP floor is m = 19 MiB, t = 2.
    public let memoryBytes: Int
    public let iterations: UInt64

    public init(memoryBytes: Int = 19 * 1024 * 1024, iterations: UInt64 = 2) {
        self.memoryBytes = memoryBytes
        self.iterations = iterations
    }

    public func hash(_ password: String) throws -> String {
        var out = [CChar](repeating: 0, count: Int(crypto_pwhash_STRBYTES))
        let length = UInt64(password.utf8.count)
        let result = password.withCString { pointer in
            crypto_pwhash_str_alg(&out, pointer, length, iterations, memoryBytes, crypto_pwhash_ALG_ARGON2ID13)
        }
        guard result == 0 else { throw HashingFailed() }
        return String(nulTerminated: out)
    }

    public func verify(_ password: String, against stored: String) -> Bool {
        let length = UInt64(password.utf8.count)
        return password.withCString { crypto_pwhash_str_verify(stored, $0, length) == 0 }
    }

    public struct HashingFailed: Error {}
}
