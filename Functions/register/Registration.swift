import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitRuntime
import SharedKitStores

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
        // A username another account holds is refused whatever the address, so the answer says nothing
        // about whether the address has an account.
        if let username, try context.db.query("SELECT 1 FROM users WHERE username = \(username) AND email <> \(email)").first != nil {
            throw usernameTaken
        }
        // Within the cooldown or over the hourly caps, the same answer as any other: nothing is sent or changed.
        guard try CodeSendLimits(context).claimIfAllowed(email: email, purpose: .verify, client: request.clientAddress) else {
            return try .json(verificationSent, status: .accepted)
        }

        let existing = try context.db.query("SELECT id, verified FROM users WHERE email = \(email)").first
        if let existing, try existing.get("verified", as: Bool.self) {
            deliver(AccountMail.registrationAttempt(to: email, baseURL: context.config.publicBaseURL), context)
            return try .json(verificationSent, status: .accepted)
        }
        // A pending account's credentials are never changed here: this sign-up's password and username go
        // with its own code, and only entering a code (proof of the mailbox) applies a sign-up's credentials.
        let credentials = EmailCodes.Credentials(passwordHash: hash, username: username)
        let code: String = try context.db.transaction {
            if existing == nil {
                do {
                    try context.db.execute(
                        """
                        INSERT INTO users (email, username, password_hash) VALUES (\(email), \(username), \(hash))
                        ON CONFLICT (email) DO NOTHING
                        """)
                } catch let error as PostgresError where error.isUniqueViolation && error.constraint == "users_username_key" {
                    throw usernameTaken
                }
            }
            return try EmailCodes(db: context.db, secret: context.config.appSecret).issue(
                email: email, purpose: .verify, credentials: credentials)
        }
        deliver(AccountMail.verificationCode(to: email, code: code, baseURL: context.config.publicBaseURL, again: existing != nil), context)
        return try .json(verificationSent, status: .accepted)
    }

    static let usernameTaken = HTTPError(.conflict, code: "username_taken", message: "That username is taken; choose another.")

    static func resend(_ request: Request, _ context: Context) throws -> Response {
        let email = try AccountRules.email(try request.decode(Address.self).email)
        try CodeSendLimits(context).claim(email: email, purpose: .verify, client: request.clientAddress)
        let pending = try context.db.query("SELECT 1 FROM users WHERE email = \(email) AND NOT verified").first != nil
        if pending {
            // A fresh code for the newest sign-up, with its credentials (the account's own when no sign-up
            // code is left).
            let codes = EmailCodes(db: context.db, secret: context.config.appSecret)
            let code: String = try context.db.transaction {
                let newest = try codes.newestSignUp(email: email)
                return try codes.issue(email: email, purpose: .verify, credentials: newest?.credentials, replacing: newest?.id)
            }
            deliver(AccountMail.verificationCode(to: email, code: code, baseURL: context.config.publicBaseURL), context)
        }
        return try .json(verificationSent, status: .accepted)
    }

    static func forgotPassword(_ request: Request, _ context: Context) throws -> Response {
        let email = try AccountRules.email(try request.decode(Address.self).email)
        try CodeSendLimits(context).claim(email: email, purpose: .reset, client: request.clientAddress)
        if try context.db.query("SELECT 1 FROM users WHERE email = \(email)").first != nil {
            let code = try EmailCodes(db: context.db, secret: context.config.appSecret).issue(email: email, purpose: .reset)
            deliver(AccountMail.resetCode(to: email, code: code, baseURL: context.config.publicBaseURL), context)
        }
        return try .json(resetSent, status: .accepted)
    }

    /// Mail goes out after the answer has been sent (FastCGI lets the process finish the request first):
    /// the answer's timing never includes an SMTP exchange, so it cannot tell an address that got mail from
    /// one that did not. Failures do not change the answer either; they are logged without the message,
    /// and the user can ask again after the cooldown.
    static func deliver(_ message: MailMessage, _ context: Context) {
        context.afterResponse {
            do {
                try Mailers.make(context.config).send(message)
            } catch {
                context.logger.error("mail delivery failed", metadata: ["error": .string("\(error)")])
            }
        }
    }
}
