import SharedKit
import SharedKitHTTP
import Logging

/// Sign-up and "send me a code". Every answer here is the same whether or not the address has an
/// account, so these endpoints cannot be used to find out who uses Atelier.
enum Registration {
    struct SignUp: Decodable {
        let email: String
        let password: String
        let username: String?
    }

    struct Address: Decodable {
        let email: String
    }

    struct Accepted: Encodable {
        let status: String
        let message: String
    }

    static let verificationSent = Accepted(
        status: "verification_sent",
        message: "If this address can be registered, a 6-digit code is on its way to it. Enter it to finish.")
    static let resetSent = Accepted(
        status: "reset_code_sent",
        message: "If an account uses this address, a 6-digit reset code is on its way to it.")

    static func register(_ request: Request, _ context: Context) throws -> Response {
        let input = try request.decode(SignUp.self)
        let email = try AccountRules.email(input.email)
        let username = try input.username.flatMap { $0.isEmpty ? nil : try AccountRules.username($0) }
        try AccountRules.password(input.password, email: email, username: username)
        // Hash before looking anything up, so every path costs the same argon2id time.
        let hash = try PasswordHasher().hash(input.password)
        try CodeSendLimits(redis: context.redis).claim(email: email, purpose: .verify)

        let existing = try context.db.query("SELECT id, verified FROM users WHERE email = \(email)").first
        if let existing, try existing.get("verified", as: Bool.self) {
            deliver(AccountMail.registrationAttempt(to: email, baseURL: context.config.publicBaseURL), context)
            return try .json(verificationSent, status: .accepted)
        }
        let code: String = try context.db.transaction {
            do {
                if existing == nil {
                    try context.db.execute("INSERT INTO users (email, username, password_hash) VALUES (\(email), \(username), \(hash))")
                } else {
                    // An unverified sign-up is replaced by the newest one: only the inbox owner can verify it.
                    try context.db.execute("""
                        UPDATE users SET password_hash = \(hash), username = COALESCE(\(username), username), updated_at = now()
                        WHERE email = \(email) AND NOT verified
                        """)
                }
            } catch let error as PostgresError where error.isUniqueViolation && error.constraint == "users_username_key" {
                throw HTTPError(.conflict, code: "username_taken", message: "That username is taken; choose another.")
            }
            return try EmailCodes(db: context.db, secret: context.config.appSecret).issue(email: email, purpose: .verify)
        }
        deliver(AccountMail.verificationCode(to: email, code: code, baseURL: context.config.publicBaseURL), context)
        return try .json(verificationSent, status: .accepted)
    }

    static func resend(_ request: Request, _ context: Context) throws -> Response {
        let email = try AccountRules.email(try request.decode(Address.self).email)
        try CodeSendLimits(redis: context.redis).claim(email: email, purpose: .verify)
        let pending = try context.db.query("SELECT 1 FROM users WHERE email = \(email) AND NOT verified").first != nil
        if pending {
            let code = try EmailCodes(db: context.db, secret: context.config.appSecret).issue(email: email, purpose: .verify)
            deliver(AccountMail.verificationCode(to: email, code: code, baseURL: context.config.publicBaseURL), context)
        }
        return try .json(verificationSent, status: .accepted)
    }

    static func forgotPassword(_ request: Request, _ context: Context) throws -> Response {
        let email = try AccountRules.email(try request.decode(Address.self).email)
        try CodeSendLimits(redis: context.redis).claim(email: email, purpose: .reset)
        if try context.db.query("SELECT 1 FROM users WHERE email = \(email)").first != nil {
            let code = try EmailCodes(db: context.db, secret: context.config.appSecret).issue(email: email, purpose: .reset)
            deliver(AccountMail.resetCode(to: email, code: code, baseURL: context.config.publicBaseURL), context)
        }
        return try .json(resetSent, status: .accepted)
    }

    /// Mail failures do not change the answer (that would reveal whether the address has an account);
    /// they are logged without the message, and the user can ask again after the cooldown.
    static func deliver(_ message: MailMessage, _ context: Context) {
        do {
            try Mailers.make(context.config).send(message)
        } catch {
            context.logger.error("mail delivery failed", metadata: ["error": .string("\(error)")])
        }
    }
}
