import SharedKit

enum CodeRedemption {
    struct Verification: Decodable {
        let email: String
        let code: String
    }

    struct Reset: Decodable {
        let email: String
        let code: String
        let password: String
    }

    struct Done: Encodable {
        let status: String
    }

    /// Proves the address: the account becomes verified and a session starts.
    static func verifyEmail(_ request: Request, _ context: Context) throws -> Response {
        let input = try request.decode(Verification.self)
        let email = try AccountRules.email(input.email)
        let codes = EmailCodes(db: context.db, secret: context.config.appSecret)
        // The attempt is counted and committed even when it fails, so the verdict is thrown afterwards.
        let outcome = try context.db.transaction { () -> EmailCodes.Outcome in
            let outcome = try codes.redeem(email: email, purpose: .verify, code: input.code)
            if case .accepted = outcome {
                try context.db.execute("UPDATE users SET verified = true, last_login_at = now(), updated_at = now() WHERE email = \(email)")
            }
            return outcome
        }
        guard case .accepted = outcome, let user = try Users(context.db).find(email: email) else {
            throw EmailCodes.error(for: outcome)
        }
        return try SessionResponse.start(for: user, context)
    }

    /// Sets a new password with a reset code and ends every session of the account.
    static func resetPassword(_ request: Request, _ context: Context) throws -> Response {
        let input = try request.decode(Reset.self)
        let email = try AccountRules.email(input.email)
        try AccountRules.password(input.password, email: email)
        let hash = try PasswordHasher().hash(input.password)
        let codes = EmailCodes(db: context.db, secret: context.config.appSecret)
        let result = try context.db.transaction { () -> (EmailCodes.Outcome, String?) in
            let outcome = try codes.redeem(email: email, purpose: .reset, code: input.code)
            guard case .accepted = outcome else { return (outcome, nil) }
            // A reset also proves the address.
            let id = try context.db.query("""
                UPDATE users SET password_hash = \(hash), verified = true, updated_at = now() WHERE email = \(email) RETURNING id
                """).first?.get("id", as: String.self)
            return (outcome, id)
        }
        guard case .accepted = result.0, let userID = result.1 else { throw EmailCodes.error(for: result.0) }
        try context.sessions.revokeAll(userID: userID)
        try LoginThrottle(redis: context.redis).recordSuccess(email: email)
        return try .json(Done(status: "password_reset"))
    }
}
