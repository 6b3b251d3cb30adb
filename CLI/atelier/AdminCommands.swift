#if canImport(Glibc)
import Glibc
#endif
import SharedKit

/// Operator commands on accounts.
enum AdminCommands {
    /// `atelier create-admin --email E`: the password is read from stdin when it is piped in, otherwise
    /// generated and printed once. An existing account is promoted (and given the password when one is
    /// piped in).
    static func createAdmin(_ arguments: [String]) throws -> Int32 {
        let options = try Commands.options(arguments)
        guard let rawEmail = options["email"] else { throw Commands.UsageError(message: "create-admin needs --email") }
        Random.initialise()
        let email = try AccountRules.email(rawEmail)
        let piped = isatty(0) == 0 ? readStandardInput().trimmingCharacters() : ""
        let password = piped.isEmpty ? generatedPassword() : piped
        if !piped.isEmpty { try AccountRules.password(password, email: email) }
        let db = PostgresConnection(url: try Commands.environment("DATABASE_URL"), timeoutMs: 10_000)
        let hash = try PasswordHasher().hash(password)
        let existed = try db.transaction { () -> Bool in
            if try db.query("SELECT 1 FROM users WHERE email = \(email) FOR UPDATE").first != nil {
                if piped.isEmpty {
                    try db.execute("UPDATE users SET is_admin = true, verified = true, updated_at = now() WHERE email = \(email)")
                } else {
                    try db.execute("UPDATE users SET is_admin = true, verified = true, password_hash = \(hash), updated_at = now() WHERE email = \(email)")
                }
                return true
            }
            try db.execute("INSERT INTO users (email, password_hash, verified, is_admin) VALUES (\(email), \(hash), true, true)")
            return false
        }
        if existed {
            print("create-admin: \(email) is now an admin" + (piped.isEmpty ? " (password unchanged)" : " with the given password"))
        } else if piped.isEmpty {
            print("create-admin: created \(email) with password \(password)")
        } else {
            print("create-admin: created \(email)")
        }
        return 0
    }

    /// 20 characters from a 56-letter alphabet without look-alikes: about 116 bits.
    static func generatedPassword() -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return String((0..<20).map { _ in alphabet[Int(Random.uniform(UInt32(alphabet.count)))] })
    }

    static func readStandardInput() -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 8192 {
            let n = read(0, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
