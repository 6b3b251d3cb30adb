import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Against the real PostgreSQL `make test` starts.
@Suite(.serialized) struct PostgresTests {
    let db = PostgresConnection(url: TestSupport.databaseURL, timeoutMs: 5000)
    let table = "pg_test_\(Random.hex(byteCount: 4))"

    init() throws {
        try db.execute(
            "CREATE TABLE \(unsafeSQL: table) (id serial PRIMARY KEY, name text UNIQUE, note text, n integer, flag boolean, at timestamptz, doc jsonb)"
        )
    }

    @Test func hostileAndUnicodeTextRoundTripsAsData() throws {
        let hostile = "'; DROP TABLE users; --"
        let unicode = "Zoë 🎨 東京 \u{202E}rtl ‘quotes’ \\ backslash"
        try db.execute("INSERT INTO \(unsafeSQL: table) (name, note) VALUES (\(hostile), \(unicode))")
        let row = try #require(try db.query("SELECT name, note FROM \(unsafeSQL: table) WHERE name = \(hostile)").first)
        #expect(try row.get("name", as: String.self) == hostile)
        #expect(try row.get("note", as: String.self) == unicode)
        let tables = try db.query("SELECT count(*) AS n FROM pg_tables WHERE tablename = \(table)")
        #expect(try tables.first?.get("n", as: Int.self) == 1)
    }

    @Test func nullsAndOptionals() throws {
        let none: String? = nil
        try db.execute("INSERT INTO \(unsafeSQL: table) (name, note, n) VALUES ('nulls', \(none), NULL)")
        let row = try #require(try db.query("SELECT note, n FROM \(unsafeSQL: table) WHERE name = 'nulls'").first)
        #expect(try row.get("note", as: String?.self) == nil)
        #expect(try row.get("n", as: Int?.self) == nil)
        #expect(throws: PostgresDecodingError.self) { try row.get("n", as: Int.self) }
    }

    struct Item: Decodable, Equatable {
        struct Doc: Codable, Equatable, Sendable { let tags: [String] }
        let name: String
        let n: Int?
        let flag: Bool
        let at: Date
        let doc: Doc?
    }

    @Test func typedRowDecoding() throws {
        let at = Date(timeIntervalSince1970: 1_795_625_451.25)
        try db.execute(
            """
            INSERT INTO \(unsafeSQL: table) (name, n, flag, at, doc)
            VALUES ('typed', \(42), \(true), \(at), \(PostgresJSON(Item.Doc(tags: ["a", "b"]))))
            """)
        let items = try db.query("SELECT name, n, flag, at, doc FROM \(unsafeSQL: table) WHERE name = 'typed'").decode(Item.self)
        #expect(items == [Item(name: "typed", n: 42, flag: true, at: at, doc: .init(tags: ["a", "b"]))])
    }

    struct Rollback: Error {}

    @Test func transactionRollsBackOnThrow() throws {
        #expect(throws: Rollback.self) {
            try db.transaction {
                try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('rolled back')")
                throw Rollback()
            }
        }
        #expect(try db.query("SELECT 1 FROM \(unsafeSQL: table) WHERE name = 'rolled back'").isEmpty)
        _ = try db.transaction { try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('kept')") }
        #expect(try db.query("SELECT 1 FROM \(unsafeSQL: table) WHERE name = 'kept'").rows.count == 1)
    }

    @Test func uniqueViolationIsRecognised() throws {
        try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('twice')")
        do {
            try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('twice')")
            Issue.record("the second insert should fail")
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
            #expect(error.constraint == "\(table)_name_key")
            #expect(!error.description.contains("twice"))
        }
        // The connection stays usable after a statement error.
        #expect(try db.query("SELECT 1 AS one").first?.get("one", as: Int.self) == 1)
    }

    @Test func reconnectsAfterTheBackendIsTerminated() throws {
        let before = try #require(try db.query("SELECT pg_backend_pid() AS pid").first?.get("pid", as: Int.self))
        let admin = PostgresConnection(url: TestSupport.databaseURL)
        let killed = try admin.query("SELECT pg_terminate_backend(\(before)) AS ok").first?.get("ok", as: Bool.self)
        #expect(killed == true)
        // Give the server a moment to deliver the FATAL message to the idle connection.
        var ts = timespec(tv_sec: 0, tv_nsec: 200_000_000)
        nanosleep(&ts, nil)
        let after = try #require(try db.query("SELECT pg_backend_pid() AS pid").first?.get("pid", as: Int.self))
        #expect(after != before)
    }

    @Test func aConnectionLostInsideNestedTransactionsFailsThemAllThenRecovers() throws {
        let admin = PostgresConnection(url: TestSupport.databaseURL)
        var afterLoss: [String] = []
        #expect(throws: DependencyUnavailable.self) {
            try db.transaction {
                try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('lost outer')")
                do {
                    try db.transaction {
                        let pid: Int = try db.query("SELECT pg_backend_pid() AS pid").first!.get("pid")
                        _ = try admin.query("SELECT pg_terminate_backend(\(pid))")
                        var ts = timespec(tv_sec: 0, tv_nsec: 200_000_000)
                        nanosleep(&ts, nil)
                        try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('lost inner')")
                    }
                } catch {
                    // Nothing may run outside the transaction after the loss, not even on a new connection.
                    do { try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('escaped')") } catch { afterLoss.append("refused") }
                    throw error
                }
            }
        }
        #expect(afterLoss == ["refused"])
        // The next transaction gets a fresh connection and works; nothing of the lost one was kept.
        _ = try db.transaction { try db.execute("INSERT INTO \(unsafeSQL: table) (name) VALUES ('after')") }
        let names = try db.query("SELECT name FROM \(unsafeSQL: table) WHERE name IN ('lost outer', 'lost inner', 'escaped', 'after')").rows
        #expect(try names.map { try $0.get("name", as: String.self) } == ["after"])
    }

    @Test func unreachableServerIsDependencyUnavailableQuickly() throws {
        let started = Monotonic.now()
        let dead = PostgresConnection(url: "postgresql://x@127.0.0.1:1/none", timeoutMs: 500)
        #expect(throws: DependencyUnavailable.self) { try dead.query("SELECT 1") }
        #expect(Monotonic.now() - started < 5_000_000_000)
    }

    @Test func statementOverTheDeadlineIsUnavailableAndTheConnectionRecovers() throws {
        let impatient = PostgresConnection(url: TestSupport.databaseURL, timeoutMs: 300)
        #expect(throws: DependencyUnavailable.self) { try impatient.query("SELECT pg_sleep(2)") }
        #expect(try impatient.query("SELECT 1 AS one").first?.get("one", as: Int.self) == 1)
    }

    /// Statements are parsed once per connection: the second run uses the kept statement, the results are
    /// the same, and a new connection prepares afresh. Off (behind a transaction pooler), nothing is kept.
    @Test func statementsAreKeptPreparedPerConnectionWhenAsked() throws {
        let keeping = PostgresConnection(url: TestSupport.databaseURL, timeoutMs: 5000)
        func kept(_ conn: PostgresConnection) throws -> Int {
            try conn.query(
                "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE '%prepared-probe%' AND statement NOT LIKE '%pg_prepared%'"
            )
            .first!.get("n")
        }
        for n in 1...3 {
            let row = try #require(try keeping.query("SELECT \(n)::int + 1 AS m, 'prepared-probe' AS tag").first)
            #expect(try row.get("m", as: Int.self) == n + 1)
        }
        #expect(try kept(keeping) == 1)
        // BEGIN and COMMIT are not kept; a transaction's statements are, and outlive its rollback.
        #expect(throws: PostgresError.self) {
            try keeping.transaction {
                _ = try keeping.query("SELECT 'prepared-probe-2' AS tag")
                try keeping.execute("SELECT 1/0")
            }
        }
        #expect(try kept(keeping) == 2)
        #expect(try keeping.query("SELECT 'prepared-probe-2' AS tag").first?.get("tag", as: String.self) == "prepared-probe-2")
        keeping.close()
        #expect(try kept(keeping) == 0)

        let plain = PostgresConnection(url: TestSupport.databaseURL, timeoutMs: 5000, prepareStatements: false)
        _ = try plain.query("SELECT \(1)::int AS m, 'prepared-probe' AS tag")
        #expect(try kept(plain) == 0)
    }

    @Test func onlyTimesThatExistParse() {
        #expect(Timestamp.parse("2028-02-29 23:59:59.5+00") != nil)
        #expect(Timestamp.parse("2027-12-31T00:00:00Z") != nil)
        for impossible in [
            "2027-13-45T00:00:00Z", "2027-02-29 00:00:00+00", "0000-01-01T00:00:00Z", "2027-01-01T24:00:00Z",
            "2027-01-01T10:61:00Z", "2027-04-31 10:00:00+00", "2027/01/01 10:00:00",
        ] {
            #expect(Timestamp.parse(impossible) == nil, "\(impossible)")
        }
    }

    @Test func onlyReadsAndWritesArePrepared() {
        #expect(PostgresConnection.isPreparable("SELECT 1"))
        #expect(PostgresConnection.isPreparable("\n  with x AS (SELECT 1) SELECT * FROM x"))
        #expect(PostgresConnection.isPreparable("INSERT INTO t VALUES ($1)"))
        #expect(PostgresConnection.isPreparable("update t SET a = 1"))
        #expect(PostgresConnection.isPreparable("DELETE FROM t"))
        #expect(!PostgresConnection.isPreparable("BEGIN"))
        #expect(!PostgresConnection.isPreparable("COMMIT"))
        #expect(!PostgresConnection.isPreparable("SAVEPOINT s1"))
        #expect(!PostgresConnection.isPreparable("SELECTED"))
        #expect(!PostgresConnection.isPreparable("CREATE TABLE t (id int)"))
    }

    /// Rows read by column position, as the listings read them, name the column that does not fit.
    @Test func recordsReadColumnsInOrder() throws {
        struct Pair: PostgresRecord {
            let name: String
            let n: Int?
            init(_ row: inout PostgresRow.Reader) throws {
                name = try row.next()
                n = try row.next()
            }
        }
        let pairs = try db.query("SELECT 'a' AS name, 1 AS n UNION ALL SELECT 'b', NULL ORDER BY 1").records(Pair.self)
        #expect(pairs.map(\.name) == ["a", "b"])
        #expect(pairs.map(\.n) == [1, nil])
        #expect(throws: PostgresDecodingError.self) { try db.query("SELECT NULL::text AS name, 1 AS n").records(Pair.self) }
        #expect(throws: PostgresDecodingError.self) { try db.query("SELECT 'only' AS name").records(Pair.self) }
    }
}
