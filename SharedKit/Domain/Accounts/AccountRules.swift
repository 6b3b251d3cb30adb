import CZxcvbn
import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// The rules an email, a password and a username must meet, each failure with its own code.
public enum AccountRules {
    public static let minimumPasswordCharacters = 8
    public static let maximumPasswordBytes = 1024
    /// zxcvbn's guesses for a password below which it is "too common": 10^8 is zxcvbn score 2,
    /// "somewhat guessable — protection from unthrottled online attacks".
    static let minimumGuessesLog10 = 8.0

    /// Lower-cased, trimmed, and checked for one `@` with a dotted domain; the account is keyed on it.
    public static func email(_ raw: String) throws -> String {
        let email = raw.trimmingWhitespace().lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        let valid =
            email.utf8.count <= 254 && parts.count == 2 && !parts[0].isEmpty && parts[0].utf8.count <= 64
            && parts[1].contains(".") && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".") && !parts[1].contains("..")
            && email.unicodeScalars.allSatisfy {
                $0.value > 0x20 && $0.value != 0x7F && !"<>()[]\\,;:\"".unicodeScalars.contains($0) || $0 == "@"
            }
        guard valid else {
            throw HTTPError(.badRequest, code: "invalid_email", message: "That does not look like an email address.")
        }
        return email
    }

    /// Checks a new password: length in characters and bytes, then zxcvbn's strength estimate, which
    /// knows the common-password lists and the user's own email and username.
    public static func password(_ password: String, email: String = "", username: String? = nil) throws {
        if password.utf8.count > maximumPasswordBytes {
            throw HTTPError(.badRequest, code: "password_too_long", message: "Passwords can be at most \(maximumPasswordBytes) bytes long.")
        }
        if password.count < minimumPasswordCharacters {
            throw HTTPError(
                .badRequest, code: "password_too_short", message: "Passwords need at least \(minimumPasswordCharacters) characters.")
        }
        if password.utf8.contains(0) {
            throw HTTPError(.badRequest, code: "invalid_password", message: "Passwords cannot contain a NUL character.")
        }
        let personal = [email, String(email.split(separator: "@").first ?? ""), username ?? ""].filter { !$0.isEmpty }
        if guessesLog10(password, personal: personal) < minimumGuessesLog10 {
            throw HTTPError(
                .badRequest, code: "password_too_common",
                message:
                    "That password is too easy to guess (a common password, a pattern or your own name); try a longer phrase of unrelated words."
            )
        }
    }

    /// zxcvbn's estimate of log10(guesses): its result is entropy in bits.
    static func guessesLog10(_ password: String, personal: [String]) -> Double {
        var strings: [UnsafeMutablePointer<CChar>?] = personal.map { strdup($0) } + [nil]
        defer { strings.forEach { free($0) } }
        let bits = strings.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { dict in
                ZxcvbnMatch(password, dict, nil)
            }
        }
        return bits * 0.30103  // log10(2)
    }

    /// 3–32 of a-z 0-9 _ . - (lower-cased first).
    public static func username(_ raw: String) throws -> String {
        let name = raw.trimmingWhitespace().lowercased()
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2E || c == 0x2D
        }
        guard allowed, (3...32).contains(name.utf8.count) else {
            throw HTTPError(
                .badRequest, code: "invalid_username",
                message: "Usernames are 3 to 32 characters of a–z, 0–9, underscore, dot and hyphen.")
        }
        return name
    }
}
