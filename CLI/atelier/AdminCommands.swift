import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Operator commands on accounts.
enum AdminCommands {
    /// `atelier create-admin --email E`: the password is read from stdin when it is piped in, otherwise
    /// generated and printed once. An existing account is promoted (and given the password when one is
    /// piped in).
    static func createAdmin(email rawEmail: String) throws -> Int32 {
        Random.initialise()
        let email = try AccountRules.email(rawEmail)
        let piped = isatty(0) == 0 ? readStandardInput().trimmingWhitespace().description : ""
        let password = piped.isEmpty ? generatedPassword() : piped
        if !piped.isEmpty { try AccountRules.password(password, email: email) }
        let db = try Commands.database()
        let hash = try PasswordHasher().hash(password)
        let existed = try db.transaction { () -> Bool in
            if let current = try db.query("SELECT id, is_admin FROM users WHERE email = \(email) FOR UPDATE").first {
                let wasAdmin: Bool = try current.get("is_admin")
                if !wasAdmin {
                    try AuditLog(db).record(
                        actorID: nil, actorLabel: "cli", action: "promote_admin", targetUserID: try current.get("id"),
                        targetEmail: email, before: ["is_admin": .bool(false)], after: ["is_admin": .bool(true)], requestID: nil)
                }
                if piped.isEmpty {
                    try db.execute("UPDATE users SET is_admin = true, verified = true, updated_at = now() WHERE email = \(email)")
                } else {
                    try db.execute(
                        "UPDATE users SET is_admin = true, verified = true, password_hash = \(hash), updated_at = now() WHERE email = \(email)"
                    )
                }
                return true
            }
            let id: UserID = try db.query(
                """
                INSERT INTO users (email, password_hash, verified, is_admin) VALUES (\(email), \(hash), true, true) RETURNING id
                """
            ).first!.get("id")
            try AuditLog(db).record(
                actorID: nil, actorLabel: "cli", action: "create_admin", targetUserID: id, targetEmail: email,
                before: nil, after: ["is_admin": .bool(true)], requestID: nil)
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

    /// The context of an operator command: the same configuration the functions read.
    static func context() throws -> Context {
        Services.start(function: "atelier", media: MediaStorages.configured).standaloneContext()
    }

    static func user(email raw: String, _ context: Context) throws -> User {
        guard let user = try Users(context.db).find(email: try AccountRules.email(raw)) else {
            throw Commands.UsageError(message: "no account has the email \(raw)")
        }
        return user
    }

    /// `atelier grant-premium --email E --until YYYY-MM-DD` (or `--until none` to revoke).
    static func grantPremium(email: String, until untilText: String) throws -> Int32 {
        let context = try context()
        let user = try user(email: email, context)
        let until: Date?
        if untilText == "none" {
            until = nil
        } else {
            guard let date = Timestamp.parse(untilText.count == 10 ? untilText + " 00:00:00+00" : untilText) else {
                throw Commands.UsageError(message: "--until must be a date like 2027-01-31")
            }
            until = date
        }
        try context.db.transaction {
            if let until {
                try context.db.execute(
                    """
                    UPDATE users SET premium_until = \(until), updated_at = now(),
                           quota_period_start = CASE WHEN premium_until > now() THEN quota_period_start ELSE now() END,
                           quota_used = CASE WHEN premium_until > now() THEN quota_used ELSE 0 END
                    WHERE id = \(user.id)
                    """)
            } else {
                try context.db.execute("UPDATE users SET premium_until = NULL, updated_at = now() WHERE id = \(user.id)")
            }
            try AuditLog(context.db).record(
                actorID: nil, actorLabel: "cli", action: until == nil ? "revoke_premium" : "grant_premium", targetUserID: user.id,
                targetEmail: user.email,
                before: ["premium_until": user.premiumUntil.map { .string(Timestamp.format($0)) } ?? .null],
                after: ["premium_until": until.map { .string(Timestamp.format($0)) } ?? .null], requestID: nil)
        }
        print(
            "grant-premium: \(user.email) " + (until.map { "is premium until \(Timestamp.format($0))" } ?? "is no longer premium"))
        return 0
    }

    /// `atelier revoke-sessions --email E`: logs the user out everywhere.
    static func revokeSessions(email: String) throws -> Int32 {
        let context = try context()
        let user = try user(email: email, context)
        let ended = try context.sessions.revokeAll(userID: user.id)
        try AuditLog(context.db).record(
            actorID: nil, actorLabel: "cli", action: "revoke_sessions", targetUserID: user.id,
            targetEmail: user.email, before: ["active_sessions": .number(Double(ended))],
            after: ["active_sessions": .number(0)], requestID: nil)
        print("revoke-sessions: ended \(ended) sessions of \(user.email)")
        return 0
    }

    /// `atelier delete-user --email E`: deletes the account and everything it owns.
    static func deleteUser(email: String) throws -> Int32 {
        let context = try context()
        let user = try user(email: email, context)
        if user.isAdmin, try context.db.query("SELECT count(*) AS n FROM users WHERE is_admin").first!.get("n", as: Int.self) <= 1 {
            throw Commands.UsageError(message: "\(user.email) is the last admin; promote someone else first")
        }
        try AccountDeletion(context).delete(userID: user.id) {
            try AuditLog(context.db).record(
                actorID: nil, actorLabel: "cli", action: "delete_user", targetUserID: user.id,
                targetEmail: user.email, before: ["email": .string(user.email), "is_admin": .bool(user.isAdmin)],
                after: nil, requestID: nil)
        }
        print("delete-user: deleted \(user.email) and everything it owned")
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
