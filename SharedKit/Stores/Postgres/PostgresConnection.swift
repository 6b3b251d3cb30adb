import CPostgres
import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// One libpq connection, owned by one function process. It connects on first use, checks before each
/// statement outside a transaction that the server has not closed it (a restart, `pg_terminate_backend`)
/// and reconnects if so, and bounds every connect and round trip with a client-side deadline so a hung
/// server costs a 503 rather than a hung request.
///
/// Not `Sendable`: used by one request at a time on the accept loop's thread; the `PGconn` has exactly
/// this owner, which frees it.
public final class PostgresConnection {
    private let url: String
    public let timeoutMs: Int
    private var connection: OpaquePointer?
    private var transactionDepth = 0
    /// Work waiting for the outermost transaction to commit (`onCommit`).
    private var commitHooks: [() -> Void] = []
    /// Counts connections opened and lost, so a transaction can tell that its connection went away.
    private var connectionEpoch = 0
    /// Backend pid of the current connection, for diagnostics and tests.
    public private(set) var backendPID: Int32 = 0
    /// Whether statements are kept prepared on the connection (parsed and planned once per connection,
    /// not per request). Off behind a transaction-mode pooler (PgBouncer before 1.21), where the next
    /// transaction may run on a server connection that never saw the PREPARE.
    public let preparesStatements: Bool
    /// The statements prepared on the current connection: SQL text → statement name. Emptied with the
    /// connection; bounded, since statements are written in the code and a process runs a fixed set.
    private var prepared: [String: String] = [:]
    private var statementCounter = 0
    static let maxPrepared = 512

    public init(url: String, timeoutMs: Int = 1500, prepareStatements: Bool = true) {
        self.url = url
        self.timeoutMs = timeoutMs
        self.preparesStatements = prepareStatements
    }

    deinit {
        if let connection { PQfinish(connection) }
    }

    // MARK: Statements

    /// Runs one statement and returns its rows.
    @discardableResult
    public func query(_ query: SQLQuery) throws -> PostgresResult {
        // A C string ends at NUL: a value holding one would be cut short silently, so it is refused.
        if query.binds.contains(where: { $0?.utf8.contains(0) == true }) {
            throw UnstorableText()
        }
        let conn = try ready()
        let statement = try preparedName(for: query, on: conn)
        var values: [UnsafeMutablePointer<CChar>?] = query.binds.map { $0.flatMap { strdup($0) } }
        defer { values.forEach { free($0) } }
        let sent = values.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: UnsafePointer<CChar>?.self) { params in
                if let statement {
                    return PQsendQueryPrepared(conn, statement, Int32(params.count), params.baseAddress, nil, nil, 0)
                }
                return PQsendQueryParams(conn, query.sql, Int32(params.count), nil, params.baseAddress, nil, nil, 0)
            }
        }
        guard sent == 1 else { throw lost("send failed: \(lastMessage(conn))") }
        do {
            return try collect(conn)
        } catch let error as PostgresError where statement != nil && error.sqlState == "0A000" {
            // "cached plan must not change result type": a migration changed a table under a kept
            // statement. It is prepared afresh (under a new name) on the next use.
            prepared[query.sql] = nil
            throw error
        }
    }

    /// The name of the statement prepared for this SQL on this connection, preparing it on first use;
    /// nil when statements are not kept (off, transaction control, or the bound reached).
    private func preparedName(for query: SQLQuery, on conn: OpaquePointer) throws -> String? {
        guard preparesStatements else { return nil }
        if let name = prepared[query.sql] { return name }
        guard prepared.count < Self.maxPrepared, Self.isPreparable(query.sql) else { return nil }
        statementCounter += 1
        let name = "atelier_\(statementCounter)"
        guard PQsendPrepare(conn, name, query.sql, Int32(query.binds.count), nil) == 1 else {
            throw lost("send failed: \(lastMessage(conn))")
        }
        _ = try collect(conn)
        prepared[query.sql] = name
        return name
    }

    /// Statements worth keeping: reads and writes. BEGIN, COMMIT, SAVEPOINT and the like are not.
    static func isPreparable(_ sql: String) -> Bool {
        var word: [UInt8] = []
        for byte in sql.utf8 {
            if byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D {
                if word.isEmpty { continue }
                break
            }
            word.append(byte | 0x20)  // ASCII lower case
            if word.count > 6 { break }
        }
        return ["select", "with", "insert", "update", "delete"].contains(String(decoding: word, as: UTF8.self))
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: SQLQuery) throws -> Int {
        try self.query(query).affectedRows
    }

    /// Runs a script of several statements with no parameters (migrations). Never pass user input.
    public func execute(unsafeScript script: String) throws {
        let conn = try ready()
        guard PQsendQuery(conn, script) == 1 else { throw lost("send failed: \(lastMessage(conn))") }
        _ = try collect(conn, timeoutMs: max(timeoutMs, 60_000))
    }

    /// Runs `body` in a transaction that commits when it returns and rolls back when it throws. Nested
    /// calls become savepoints.
    ///
    /// A connection lost inside a transaction is never replaced until the outermost transaction has
    /// unwound: every statement in between fails, so no part of the work can run outside it, and COMMIT
    /// is sent on the connection that ran the work or not at all.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        let depth = transactionDepth
        try execute(depth == 0 ? "BEGIN" : SQLQuery(unsafeSQL: "SAVEPOINT s\(depth)"))
        transactionDepth = depth + 1
        let epoch = connectionEpoch
        let hooksBefore = commitHooks.count
        do {
            let result = try body()
            try execute(depth == 0 ? "COMMIT" : SQLQuery(unsafeSQL: "RELEASE SAVEPOINT s\(depth)"))
            transactionDepth = depth
            if depth == 0 {
                let hooks = commitHooks
                commitHooks = []
                for hook in hooks { hook() }
            }
            return result
        } catch {
            if connectionEpoch == epoch, connection != nil {
                _ = try? execute(depth == 0 ? "ROLLBACK" : SQLQuery(unsafeSQL: "ROLLBACK TO SAVEPOINT s\(depth)"))
            }
            transactionDepth = depth
            commitHooks.removeSubrange(min(hooksBefore, commitHooks.count)...)  // what the rolled-back part asked for
            throw error
        }
    }

    /// Runs `work` once what was done so far is committed: at once outside a transaction, after the
    /// outermost COMMIT inside one, never if it rolls back (counting a refund that really happened).
    public func onCommit(_ work: @escaping () -> Void) {
        if transactionDepth == 0 { work() } else { commitHooks.append(work) }
    }

    /// Closes the connection; the next statement outside a transaction opens a new one.
    public func close() {
        if let connection { PQfinish(connection) }
        connection = nil
        connectionEpoch += 1
        prepared = [:]
    }

    // MARK: Connection state

    /// A live connection: opened if there is none, replaced if the server closed the idle one.
    private func ready() throws -> OpaquePointer {
        if transactionDepth > 0 {
            guard let conn = connection else {
                throw DependencyUnavailable(.database, detail: "the connection was lost inside a transaction")
            }
            return conn
        }
        if let conn = connection {
            if PQstatus(conn) == CONNECTION_OK, idleSocketIsQuiet(conn) { return conn }
            close()
        }
        let conn = try connect()
        connection = conn
        return conn
    }

    /// An idle connection has nothing to read (we never LISTEN); readable means the server sent an error
    /// (FATAL: terminating connection) or closed the socket, so it is replaced rather than trusted.
    private func idleSocketIsQuiet(_ conn: OpaquePointer) -> Bool {
        var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) == 0
    }

    private func connect() throws -> OpaquePointer {
        let keys = ["dbname", "options", "application_name"]
        let values = [
            url, "-c TimeZone=UTC -c DateStyle=ISO -c client_min_messages=warning -c statement_timeout=\(max(timeoutMs * 20, 30_000))",
            "atelier",
        ]
        let conn: OpaquePointer? = withCStrings(keys) { k in withCStrings(values) { v in PQconnectStartParams(k, v, 1) } }
        guard let conn else { throw DependencyUnavailable(.database, detail: "out of memory") }
        let deadline = Monotonic.now() + Int64(timeoutMs) * 1_000_000
        var state = PGRES_POLLING_WRITING
        while true {
            if PQstatus(conn) == CONNECTION_BAD || state == PGRES_POLLING_FAILED {
                let message = lastMessage(conn)
                PQfinish(conn)
                throw DependencyUnavailable(.database, detail: "connect: \(message)")
            }
            if state == PGRES_POLLING_OK { break }
            let events = state == PGRES_POLLING_READING ? POLLIN : POLLOUT
            guard wait(PQsocket(conn), Int16(events), until: deadline) else {
                PQfinish(conn)
                throw DependencyUnavailable(.database, detail: "connect timed out after \(timeoutMs) ms")
            }
            state = PQconnectPoll(conn)
        }
        backendPID = PQbackendPID(conn)
        // Notices are for people at a psql prompt; behind a transaction pooler, which cannot pass our
        // client_min_messages on, libpq would otherwise print them to the function's stderr.
        _ = PQsetNoticeProcessor(conn, { _, _ in }, nil)
        return conn
    }

    /// Reads every result of the statement in flight, within the deadline.
    private func collect(_ conn: OpaquePointer, timeoutMs: Int? = nil) throws -> PostgresResult {
        let deadline = Monotonic.now() + Int64(timeoutMs ?? self.timeoutMs) * 1_000_000
        var last: PostgresResult?
        var failure: PostgresError?
        while true {
            while PQisBusy(conn).isTrue {
                guard wait(PQsocket(conn), Int16(POLLIN), until: deadline) else {
                    // No PQcancel: it blocks on a new connection to a server that may be the hung one.
                    // Closing the socket and the server's statement_timeout end the statement.
                    throw lost("no answer within \(timeoutMs ?? self.timeoutMs) ms")
                }
                guard PQconsumeInput(conn) == 1 else { throw lost(lastMessage(conn)) }
            }
            guard let result = PQgetResult(conn) else { break }
            let status = PQresultStatus(result)
            switch status {
            case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
                last = PostgresResult(result)
            default:
                if failure == nil { failure = Self.error(from: result, conn: conn) }
                PQclear(result)
            }
        }
        if PQstatus(conn) != CONNECTION_OK {
            throw lost(failure?.description ?? lastMessage(conn))
        }
        if let failure {
            if failure.meansUnavailable {
                if failure.sqlState != "57014" { close() }
                throw DependencyUnavailable(.database, detail: failure.description)
            }
            throw failure
        }
        return last ?? PostgresResult(nil)
    }

    private static func error(from result: OpaquePointer, conn: OpaquePointer) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let text = PQresultErrorField(result, code) else { return nil }
            return String(cString: text)
        }
        return PostgresError(
            sqlState: field(Int32(UInt8(ascii: "C"))) ?? "XX000",
            message: field(Int32(UInt8(ascii: "M"))) ?? "unknown error",
            constraint: field(Int32(UInt8(ascii: "n"))))
    }

    private func lost(_ detail: String) -> DependencyUnavailable {
        close()
        return DependencyUnavailable(.database, detail: detail)
    }

    private func lastMessage(_ conn: OpaquePointer) -> String {
        guard let text = PQerrorMessage(conn) else { return "unknown" }
        return String(cString: text).trimmingWhitespace().description
    }

    private func wait(_ fd: Int32, _ events: Int16, until deadline: Int64) -> Bool {
        while true {
            let remaining = (deadline - Monotonic.now()) / 1_000_000
            if remaining <= 0 { return false }
            var pfd = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&pfd, 1, Int32(remaining))
            if n > 0 { return true }
            if n < 0, errno == EINTR { continue }
            if n == 0 { return false }
            return true  // an error on the socket: let libpq report it
        }
    }
}

private extension Int32 {
    var isTrue: Bool { self != 0 }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { buffer in
        buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
    }
}
