import SharedKit
import SharedKitCore
import SharedKitRuntime

enum Sessions {
    struct Credentials: Decodable {
        let email: String
        let password: String
    }

    /// A precomputed hash verified when the email is unknown, so both failures take the same time.
    static let dummyHash = try! PasswordHasher().hash("atelier-dummy-password-for-timing")

    static func login(_ request: Request, _ context: Context) throws -> Response {
        let input = try request.decode(Credentials.self)
        let invalid = HTTPError(.unauthorized, code: "invalid_credentials", message: "That email and password do not match an account.")
        guard input.password.utf8.count <= AccountRules.maximumPasswordBytes,
            let email = try? AccountRules.email(input.email)
        else { throw invalid }
        let throttle = LoginThrottle(redis: context.redis)
        var account: (id: UserID, hash: String, verified: Bool)?
        guard
            try throttle.guarded(
                email: email, address: request.clientAddress,
                {
                    account = try Users(context.db).passwordHash(email: email)
                    return PasswordHasher().verify(input.password, against: account?.hash ?? dummyHash) && account != nil
                }), let account
        else { throw invalid }
        guard account.verified else {
            throw HTTPError(
                .forbidden, code: "email_not_verified",
                message: "Confirm your email first: enter the code we sent, or ask for a new one.")
        }
        try throttle.recordSuccess(email: email, address: request.clientAddress)
        try Users(context.db).recordLogin(id: account.id)
        guard let user = try Users(context.db).find(id: account.id) else { throw invalid }
        return try SessionResponse.start(for: user, context)
    }

    static func logout(_ request: Request, _ context: Context) throws -> Response {
        let session = try context.requireSession(request)
        try context.sessions.delete(id: session.id, userID: session.userID)
        var response = Response.empty()
        response.setCookie(context.expiredSessionCookie())
        return response
    }

    static func current(_ request: Request, _ context: Context) throws -> Response {
        let (user, session) = try context.authenticate(request)
        return try SessionResponse.current(for: user, session: session, now: context.date())
    }
}
