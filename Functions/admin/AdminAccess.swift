import SharedKit
import SharedKitRuntime

enum AdminAccess {
    /// The acting admin: a browser session (an API key is 401) whose user is an admin in PostgreSQL right
    /// now (a demoted admin is refused at once), else 403.
    static func require(_ request: Request, _ context: Context) throws -> User {
        let (user, session) = try context.authenticate(request)
        guard user.isAdmin else {
            throw HTTPError(.forbidden, code: "admin_required", message: "This page is for administrators.")
        }
        // Promoted while signed in: the session takes an admin's shorter idle timeout from now on.
        if !session.isAdmin { try context.sessions.markAdmin(session) }
        return user
    }

    /// Sensitive actions ask for the acting admin's own password again; wrong ones count with failed
    /// logins (per account and address), so this is no way around the login throttle.
    static func reauthenticate(_ admin: User, password: String?, _ request: Request, _ context: Context) throws {
        let refused = HTTPError(.forbidden, code: "reauthentication_required", message: "Confirm this with your own password.")
        guard let password else { throw refused }  // asked for, not guessed: not counted
        guard
            try LoginThrottle(redis: context.redis).guarded(
                email: admin.email, address: request.clientAddress, { try Users(context.db).verifyPassword(id: admin.id, password) })
        else { throw refused }
    }
}
