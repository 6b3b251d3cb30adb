import SharedKitCore

/// One run at a time for a cron function: a lease row in `cron_leases`, taken when it is free or expired,
/// extended as the run makes progress and deleted at the end. A row rather than a session advisory lock,
/// so it holds through a transaction-pooling PgBouncer, and the run can call providers between short
/// transactions without holding row locks meanwhile. A run that dies leaves a lease that expires after
/// `leaseSeconds` of no progress; the next run then takes it.
public struct RunLock {
    let db: PostgresConnection
    let name: String
    let leaseSeconds: Int
    let holder = Random.hex(byteCount: 12)

    public init(db: PostgresConnection, name: String, leaseSeconds: Int = 300) {
        self.db = db
        self.name = name
        self.leaseSeconds = leaseSeconds
    }

    /// Runs `body` when the lease is free and returns its result; nil when another run holds it.
    public func run<T>(_ body: (RunLock) throws -> T) throws -> T? {
        let taken = try db.execute(
            """
            INSERT INTO cron_leases (name, holder, expires_at) VALUES (\(name), \(holder), now() + make_interval(secs => \(leaseSeconds)))
            ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
            WHERE cron_leases.expires_at < now()
            """)
        guard taken == 1 else { return nil }
        defer { _ = try? db.execute("DELETE FROM cron_leases WHERE name = \(name) AND holder = \(holder)") }
        return try body(self)
    }

    /// Pushes the lease's end `leaseSeconds` from now; a run calls it as it makes progress.
    public func extend() throws {
        try db.execute(
            """
            UPDATE cron_leases SET expires_at = now() + make_interval(secs => \(leaseSeconds)) WHERE name = \(name) AND holder = \(holder)
            """)
    }
}
