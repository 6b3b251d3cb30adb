#if canImport(Glibc)
import Glibc
#endif

/// Applies the numbered SQL files of a folder (`0001_initial.sql`, …) once each, in order. Each file runs
/// in its own transaction under a transaction-level advisory lock and is recorded in `schema_migrations`,
/// so two concurrent runs apply every file exactly once.
public struct Migrator {
    public struct Migration: Sendable {
        public let version: Int
        public let name: String
        public let sql: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// An arbitrary constant shared by every Atelier migrator.
    static let lockKey = 0x6174_656c_6965_72

    let db: PostgresConnection

    public init(db: PostgresConnection) {
        self.db = db
    }

    /// Reads `NNNN_name.sql` files, sorted by number; duplicate numbers are an error.
    public static func load(folder: String) throws -> [Migration] {
        guard let dir = opendir(folder) else { throw Failure(description: "cannot open migrations folder \(folder)") }
        defer { closedir(dir) }
        var migrations: [Migration] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            guard name.hasSuffix(".sql"), let underscore = name.firstIndex(of: "_"), let version = Int(name[..<underscore]) else {
                continue
            }
            guard let sql = readFile("\(folder)/\(name)") else { throw Failure(description: "cannot read \(folder)/\(name)") }
            migrations.append(Migration(version: version, name: String(name.dropLast(4)), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw Failure(description: "two migrations share number \(a.version): \(a.name), \(b.name)")
        }
        return migrations
    }

    /// Applies what is pending; returns the names applied by this run.
    @discardableResult
    public func migrate(_ migrations: [Migration]) throws -> [String] {
        var applied: [String] = []
        for migration in migrations {
            let didApply = try db.transaction { () -> Bool in
                try db.execute("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
                try db.execute(
                    """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())
                    """)
                let done = try db.query("SELECT 1 FROM schema_migrations WHERE version = \(migration.version)")
                if !done.isEmpty { return false }
                try db.execute(unsafeScript: migration.sql)
                try db.execute("INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))")
                return true
            }
            if didApply { applied.append(migration.name) }
        }
        return applied
    }

    static func readFile(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    package static func readBytes(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return bytes
    }
}
