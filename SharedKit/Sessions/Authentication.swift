/// Who is making a request. Browser sessions come from the session cookie; a state-changing request
/// (anything but GET/HEAD/OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`.
extension Context {
    /// The session cookie's name: `__Host-` prefixed (Secure, Path=/, no Domain) on https deployments.
    public var sessionCookieName: String { config.isHTTPS ? "__Host-atelier_session" : "atelier_session" }

    public var sessions: SessionStore {
        SessionStore(redis: redis, lifetimes: sessionLifetimes, now: now)
    }

    /// The live session of the request's cookie, if any (no CSRF check).
    public func session(_ request: Request) throws -> SessionStore.Session? {
        guard let token = request.cookies[sessionCookieName] else { return nil }
        return try sessions.find(token: token)
    }

    /// The request's session, or 401; for a state-changing request also the CSRF token, or 403.
    public func requireSession(_ request: Request) throws -> SessionStore.Session {
        guard let session = try session(request) else {
            throw HTTPError(.unauthorized, code: "not_authenticated", message: "Log in to continue.")
        }
        if !Self.safeMethods.contains(request.method) {
            let sent = request.header("x-csrf-token") ?? ""
            guard Digest.constantTimeEquals(Array(sent.utf8), Array(session.csrfToken.utf8)) else {
                throw HTTPError(.forbidden, code: "csrf_failed",
                                message: "This request is missing its security token; reload the page and try again.")
            }
        }
        return session
    }

    /// The signed-in user, read fresh from PostgreSQL (a deleted account or a changed flag counts at once).
    public func authenticatedUser(_ request: Request) throws -> User {
        try authenticate(request).user
    }

    /// The signed-in user and the session that proves it.
    public func authenticate(_ request: Request) throws -> (user: User, session: SessionStore.Session) {
        let session = try requireSession(request)
        guard let user = try Users(db).find(id: session.userID) else {
            try? sessions.delete(id: session.id, userID: session.userID)
            throw HTTPError(.unauthorized, code: "not_authenticated", message: "Log in to continue.")
        }
        return (user, session)
    }

    /// The cookie that carries a new session token.
    public func sessionCookie(_ token: String) -> SetCookie {
        SetCookie(name: sessionCookieName, value: token, maxAge: sessionLifetimes.absoluteSeconds, secure: config.isHTTPS)
    }

    /// The cookie that removes it.
    public func expiredSessionCookie() -> SetCookie {
        SetCookie(name: sessionCookieName, value: "", maxAge: 0, secure: config.isHTTPS)
    }

    static let safeMethods: Set<String> = ["GET", "HEAD", "OPTIONS"]
}
