import Logging
import SharedKitCore
public import SharedKitRuntime

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who is making a request: a browser session (the session cookie; a state-changing request must also
/// carry the session's CSRF token in `X-CSRF-Token`) or a program (an API key in `Authorization: Bearer`,
/// never in the query string).
public struct Principal: Sendable {
    public let user: User
    public let session: SessionStore.Session?
    public let apiKeyID: String?
}

extension Context {
    /// Authenticates by API key or session, then spends one request of `budget` (per user, and per key
    /// for programs). The rate-limit headers go on the response whatever it turns out to be.
    public func authorize(_ request: Request, budget: KeyPath<RateLimiter.Budgets, RateLimiter.Budget>) throws -> Principal {
        // A browser session with a budget that does not depend on the account: found and charged in one
        // Redis round trip, then the user row (generation's budget depends on premium, read from it).
        if budget != \RateLimiter.Budgets.generateFree, isSessionRequest(request) {
            let session = try chargedSession(request, budget: budget)
            return Principal(user: try liveUser(of: session), session: session, apiKeyID: nil)
        }
        let principal = try authenticateAny(request)
        let budgets = rateBudgets
        var chosen = budgets[keyPath: budget]
        if budget == \RateLimiter.Budgets.generateFree, principal.user.isPremium(at: date()) { chosen = budgets.generatePremium }
        var subjects = ["u:\(principal.user.id)"]
        if let key = principal.apiKeyID { subjects.append("k:\(key)") }
        let decision: RateLimiter.Decision
        do {
            decision = try RateLimiter(redis: redis).check(chosen, subjects: subjects)
        } catch let error as DependencyUnavailable where chosen.name == "read" {
            // Reads fail open when Redis is down (they cost nothing); generation fails closed (503).
            logger.warning("rate limit unchecked: redis unavailable", metadata: ["error": .string(error.detail)])
            return principal
        }
        try apply(decision)
        return principal
    }

    /// The session of a request that carries no API key, its idle timer renewed and one request of
    /// `budget` spent from its owner's bucket (one Redis round trip); 401 without one, 429 when spent.
    func chargedSession(_ request: Request, budget: KeyPath<RateLimiter.Budgets, RateLimiter.Budget>) throws -> SessionStore.Session {
        guard let token = request.cookies[sessionCookieName],
            let (session, decision) = try sessions.find(token: token, charging: rateBudgets[keyPath: budget])
        else {
            throw Self.notAuthenticated
        }
        if let decision { try apply(decision) }
        try checkCSRF(request, session)
        return session
    }

    /// The rate-limit headers of a decision on the response, and 429 when it refused.
    func apply(_ decision: RateLimiter.Decision) throws {
        request.responseHeaders.append(contentsOf: decision.headers)
        guard decision.allowed else {
            throw HTTPError(
                .tooManyRequests, code: "rate_limited",
                message: "Too many requests; wait \(decision.retryAfterSeconds) seconds and try again.",
                headers: [("Retry-After", String(decision.retryAfterSeconds))])
        }
    }

    /// No API key anywhere: the request is a browser's (or nobody's).
    func isSessionRequest(_ request: Request) -> Bool {
        request.header("authorization") == nil && request.query["api_key"] == nil && request.query["key"] == nil
            && request.query["access_token"] == nil
    }

    /// The session's user, read fresh from PostgreSQL; a deleted account ends the session (401).
    func liveUser(of session: SessionStore.Session) throws -> User {
        guard let user = try Users(db).find(id: session.userID) else {
            try? sessions.delete(id: session.id, userID: session.userID)
            throw Self.notAuthenticated
        }
        return user
    }

    static let notAuthenticated = HTTPError(.unauthorized, code: "not_authenticated", message: "Log in to continue.")

    /// A browser session or an API key. API-key requests are counted per day for the usage page.
    public func authenticateAny(_ request: Request) throws -> Principal {
        if request.query["api_key"] != nil || request.query["key"] != nil || request.query["access_token"] != nil {
            throw HTTPError(
                .unauthorized, code: "invalid_api_key",
                message: "API keys go in the Authorization header (Bearer), never in the URL.")
        }
        if let authorization = request.header("authorization") {
            guard authorization.lowercased().hasPrefix("bearer ") else {
                throw HTTPError(.unauthorized, code: "invalid_api_key", message: "Use 'Authorization: Bearer <api key>'.")
            }
            let key = authorization.dropFirst(7).trimmingWhitespace().description
            guard let (keyID, user) = try APIKeys(db).authenticate(key) else {
                throw HTTPError(.unauthorized, code: "invalid_api_key", message: "This API key is not valid, or was revoked.")
            }
            return Principal(user: user, session: nil, apiKeyID: keyID)
        }
        let (user, session) = try authenticate(request)
        return Principal(user: user, session: session, apiKeyID: nil)
    }

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
        if request.header("authorization") != nil {
            throw HTTPError(
                .unauthorized, code: "session_required", message: "This needs a signed-in browser session; API keys cannot do it.")
        }
        guard let session = try session(request) else {
            throw HTTPError(.unauthorized, code: "not_authenticated", message: "Log in to continue.")
        }
        try checkCSRF(request, session)
        return session
    }

    /// A state-changing request must carry the session's CSRF token in `X-CSRF-Token` (403 otherwise).
    func checkCSRF(_ request: Request, _ session: SessionStore.Session) throws {
        guard !Self.safeMethods.contains(request.method) else { return }
        let sent = request.header("x-csrf-token") ?? ""
        guard Digest.constantTimeEquals(Array(sent.utf8), Array(session.csrfToken.utf8)) else {
            throw HTTPError(
                .forbidden, code: "csrf_failed",
                message: "This request is missing its security token; reload the page and try again.")
        }
    }

    /// The signed-in user, read fresh from PostgreSQL (a deleted account or a changed flag counts at once).
    public func authenticatedUser(_ request: Request) throws -> User {
        try authenticate(request).user
    }

    /// The signed-in user and the browser session that proves it (API keys are refused here: managing
    /// keys, changing the password and deleting the account need a person at a browser).
    public func authenticate(_ request: Request) throws -> (user: User, session: SessionStore.Session) {
        let session = try requireSession(request)
        return (try liveUser(of: session), session)
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
