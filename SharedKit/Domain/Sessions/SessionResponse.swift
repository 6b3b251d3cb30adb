public import SharedKitRuntime

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// The answer that starts a session (verify, login): the user, the CSRF token, and the cookie.
public enum SessionResponse {
    struct Body: Encodable {
        let user: UserView
        let csrfToken: String
    }

    public static func start(for user: User, _ context: Context) throws -> Response {
        let issued = try context.sessions.create(userID: user.id, isAdmin: user.isAdmin)
        var response = try Response.json(Body(user: UserView(user, now: context.date()), csrfToken: issued.session.csrfToken))
        response.setCookie(context.sessionCookie(issued.token))
        return response
    }

    /// The current session's user and CSRF token (`GET /api/v1/session`).
    public static func current(for user: User, session: SessionStore.Session, now: Date) throws -> Response {
        try .json(Body(user: UserView(user, now: now), csrfToken: session.csrfToken))
    }
}
