import SharedKit
import SharedKitCore
import SharedKitRuntime
import SharedKitStores

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
        let guesses = try CodeGuessLimit(context)
        try guesses.check(address: request.clientAddress)
        // The attempt is counted and committed even when it fails, so the verdict is thrown afterwards.
        let outcome = try context.db.transaction { () -> EmailCodes.Outcome in
            let outcome = try codes.redeem(email: email, purpose: .verify, code: input.code)
            guard case .accepted(let credentials) = outcome else { return outcome }
            // The sign-up whose code this is decides the password and the username (none when another
            // account took it meanwhile): the code proved the mailbox.
            try context.db.execute(
                """
                UPDATE users SET verified = true, last_login_at = now(), updated_at = now(),
                       password_hash = COALESCE(\(credentials?.passwordHash), password_hash),
                       username = CASE WHEN \(credentials?.passwordHash)::text IS NULL THEN username
                                       WHEN EXISTS (SELECT 1 FROM users o WHERE o.username = \(credentials?.username)::citext
                                                    AND o.email <> \(email)) THEN NULL
                                       ELSE \(credentials?.username)::citext END
                WHERE email = \(email) AND NOT verified
                """)
            return outcome
        }
        guard outcome.isAccepted, let user = try Users(context.db).find(email: email) else {
            try guesses.recordWrong(address: request.clientAddress)
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
        let guesses = try CodeGuessLimit(context)
        try guesses.check(address: request.clientAddress)
        let result = try context.db.transaction { () -> (EmailCodes.Outcome, UserID?) in
            let outcome = try codes.redeem(email: email, purpose: .reset, code: input.code)
            guard outcome.isAccepted else { return (outcome, nil) }
            // A reset also proves the address. It recovers the account from whoever else may hold its
            // credentials: every API key is revoked with every session (a signed-in password change keeps them).
            let id = try context.db.query(
                """
                UPDATE users SET password_hash = \(hash), verified = true, updated_at = now() WHERE email = \(email) RETURNING id
                """
            ).first?.get("id", as: UserID.self)
            if let id {
                try context.db.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = \(id) AND revoked_at IS NULL")
                // Sign-ups still waiting for a code lose their say too.
                try context.db.execute("DELETE FROM email_codes WHERE email = \(email) AND purpose = 'verify'")
            }
            return (outcome, id)
        }
        guard result.0.isAccepted, let userID = result.1 else {
            try guesses.recordWrong(address: request.clientAddress)
            throw EmailCodes.error(for: result.0)
        }
        try context.sessions.revokeAll(userID: userID)
        try LoginThrottle(redis: context.redis).recordRecovery(email: email, address: request.clientAddress)
        return try .json(Done(status: "password_reset"))
    }
}
