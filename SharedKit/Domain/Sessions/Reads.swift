public import SharedKitRuntime
public import SharedKitStores

/// Who may read a listing.
public enum ReadAccess {
    /// The owner by browser session or API key, spending one request of a budget.
    case owner(KeyPath<RateLimiter.Budgets, RateLimiter.Budget>)
    /// The owner by browser session only (API keys get 401 `session_required`); no budget.
    case browser
    /// An administrator by browser session, an admin in PostgreSQL right now (403 otherwise).
    case admin
}

/// A listing's rows with the caller who read them.
public struct Read<Row: Sendable>: Sendable {
    public let principal: Principal
    public let rows: [Row]
    public var user: User { principal.user }
}

extension Context {
    /// The hot path of every listing: who is asking and what they see, in as few round trips as the
    /// request allows. For a browser session: the session found, renewed and charged in one Redis round
    /// trip, then the user row and the rows of `query` in one PostgreSQL round trip (the user row is read
    /// fresh each time, so a deleted or demoted account loses access at once). For an API key: the key and
    /// its user in one round trip (see `authorize`), then the rows.
    ///
    /// `query` gets the user's id and selects the columns of `Row` in order; its first column is never
    /// NULL (a row id). It is called once the caller is known, so it is where the request's parameters are
    /// checked (a 400 comes after a 401, as everywhere). For `.admin` it runs only when the caller is an admin.
    public func read<Row: PostgresRecord & Sendable>(
        _ request: Request, _ access: ReadAccess, _ type: Row.Type, query: (_ userID: UserID) throws -> SQLQuery
    ) throws -> Read<Row> {
        let read = try readRows(request, access, query: query)
        let rows = try read.rows.map { row in
            var reader = PostgresRow.Reader(row: row, from: read.start)
            return try Row(&reader)
        }
        return Read(principal: read.principal, rows: rows)
    }

    /// The same, with the rows as PostgreSQL answered them: `query`'s columns begin at `start` in each row.
    /// For writers that copy columns straight into the response (the galleries).
    public func readRows(
        _ request: Request, _ access: ReadAccess, query: (_ userID: UserID) throws -> SQLQuery
    ) throws -> (principal: Principal, rows: [PostgresRow], start: Int) {
        let session: SessionStore.Session
        switch access {
        case .owner(let budget):
            guard isSessionRequest(request) else {
                let principal = try authorize(request, budget: budget)
                return (principal, try db.query(query(principal.user.id)).rows, 0)
            }
            session = try chargedSession(request, budget: budget)
        case .browser:
            session = try requireSession(request)
        case .admin:
            session = try requireSession(request)
            // A session not (yet) marked as an admin's: the account is checked before anything else, so a
            // non-admin gets 403 whatever the parameters; a promoted admin's session is marked from now on.
            if !session.isAdmin {
                guard try liveUser(of: session).isAdmin else { throw Self.adminRequired }
                try sessions.markAdmin(session)
            }
        }
        let gate: SQLQuery = if case .admin = access { "u.is_admin" } else { "TRUE" }
        let listing = try query(session.userID)
        let result = try db.query(
            """
            SELECT \(User.qualifiedColumns), r.* FROM users u
            LEFT JOIN LATERAL (SELECT * FROM (\(listing)) q WHERE \(gate)) r ON TRUE
            WHERE u.id = \(session.userID)::uuid
            """)
        guard let first = result.first else {
            try? sessions.delete(id: session.id, userID: session.userID)
            throw Self.notAuthenticated
        }
        var reader = PostgresRow.Reader(row: first)
        let user = try User(&reader)
        if case .admin = access, !user.isAdmin { throw Self.adminRequired }  // demoted since the session was marked
        let principal = Principal(user: user, session: session, apiKeyID: nil)
        // The LEFT JOIN's one row of NULLs when there is nothing to list.
        guard try !reader.nextIsNull() else { return (principal, [], reader.position) }
        return (principal, result.rows, reader.position)
    }

    static let adminRequired = HTTPError(.forbidden, code: "admin_required", message: "This page is for administrators.")
}
