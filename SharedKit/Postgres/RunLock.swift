/// One run at a time for a cron function: a session-level advisory lock held for the run (released by
/// `pg_advisory_unlock`, or by the server if the process dies). Session level, not transaction level,
/// so the run can call providers between short transactions without holding row locks meanwhile; the
/// functions connect to PostgreSQL directly (no transaction pooler that could hand the lock around).
public struct RunLock {
    let db: PostgresConnection
    let key: Int

    public init(db: PostgresConnection, key: Int) {
        self.db = db
        self.key = key
    }

    /// Runs `body` when the lock is free and returns its result; nil when another run holds it.
    public func run<T>(_ body: () throws -> T) throws -> T? {
        guard try db.query("SELECT pg_try_advisory_lock(\(key)) AS ok").first!.get("ok", as: Bool.self) else { return nil }
        defer { _ = try? db.query("SELECT pg_advisory_unlock(\(key))") }
        return try body()
    }
}
