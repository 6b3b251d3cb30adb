public import SharedKitCore
public import SharedKitRuntime
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// API keys look like `atl_<27 base62 characters><6 base62 checksum>`: 160 random bits, a prefix that
/// scanners and people recognise, and a CRC-32 so a mistyped key is refused before any database lookup.
/// Only a SHA-256 of the whole key is stored; the key is shown once, at creation.
public struct APIKeys {
    public static let prefix = "atl_"
    static let bodyLength = 27
    static let checksumLength = 6
    public static let maxActivePerUserDefault = 20

    public struct Issued: Encodable, Sendable {
        public let id: ID<Listed>
        public let name: String
        public let prefix: String
        public let secret: String
        public let createdAt: Date
    }

    public struct Listed: Decodable, PostgresRecord, JSONWritable, Sendable {
        public let id: ID<Listed>
        public let name: String
        public let prefix: String
        public let createdAt: Date
        public let lastUsedAt: Date?
        public let revokedAt: Date?

        /// The columns of `listQuery` in order.
        public init(_ row: inout PostgresRow.Reader) throws {
            self.init(
                id: try row.next(), name: try row.next(), prefix: try row.next(), createdAt: try row.next(),
                lastUsedAt: try row.next(), revokedAt: try row.next())
        }

        public init(id: ID<Listed>, name: String, prefix: String, createdAt: Date, lastUsedAt: Date?, revokedAt: Date?) {
            self.id = id
            self.name = name
            self.prefix = prefix
            self.createdAt = createdAt
            self.lastUsedAt = lastUsedAt
            self.revokedAt = revokedAt
        }

        public func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("created_at", createdAt)
                o.field("id", id)
                o.field("last_used_at", lastUsedAt)
                o.field("name", name)
                o.field("prefix", prefix)
                o.field("revoked", revokedAt != nil)
                o.field("revoked_at", revokedAt)
            }
        }
    }

    let db: PostgresConnection

    public init(_ db: PostgresConnection) {
        self.db = db
    }

    /// A new key for the user (the secret is returned this once).
    public func issue(userID: UserID, name: String, maxActive: Int) throws -> Issued {
        let name = name.trimmingWhitespace().description
        guard (1...64).contains(name.count) else {
            throw HTTPError(.badRequest, code: "invalid_name", message: "Give the key a name of 1 to 64 characters.")
        }
        let secret = Self.make()
        return try db.transaction {
            // Serialise one user's key creation so the cap holds under concurrency.
            try db.execute("SELECT 1 FROM users WHERE id = \(userID) FOR UPDATE")
            let active: Int = try db.query("SELECT count(*) AS n FROM api_keys WHERE user_id = \(userID) AND revoked_at IS NULL").first!
                .get("n")
            guard active < maxActive else {
                throw HTTPError(
                    .conflict, code: "too_many_keys", message: "You have \(active) active keys, the most allowed; revoke one first.")
            }
            let row = try db.query(
                """
                INSERT INTO api_keys (user_id, name, prefix, secret_hash) VALUES (\(userID), \(name), \(Self.visiblePrefix(secret)), \(Self.hash(secret)))
                RETURNING id, created_at
                """
            ).first!
            return Issued(
                id: try row.get("id"), name: name, prefix: Self.visiblePrefix(secret), secret: secret, createdAt: try row.get("created_at"))
        }
    }

    public func list(userID: UserID) throws -> [Listed] {
        try db.query(Self.listQuery(userID: userID)).records(Listed.self)
    }

    /// A user's keys, newest first, in the columns of `Listed`.
    public static func listQuery(userID: UserID) -> SQLQuery {
        """
        SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE user_id = \(userID)::uuid
        ORDER BY created_at DESC
        """
    }

    /// Revokes a key of the user; effective on the very next request (every request checks it).
    public func revoke(userID: UserID, id: ID<Listed>) throws {
        guard
            try db.execute(
                """
                UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = \(id) AND user_id = \(userID)
                """) == 1
        else {
            throw Self.notFound
        }
    }

    public static let notFound = HTTPError(.notFound, code: "not_found", message: "No such key.")

    /// The key's owner for a presented key (nil when unknown or revoked), in one round trip: the key's
    /// last use is stamped (at most once a minute) and the call counted for today's usage.
    public func authenticate(_ key: String) throws -> (keyID: String, user: User)? {
        guard Self.isWellFormed(key) else { return nil }
        guard
            let row = try db.query(
                """
                WITH k AS (
                    SELECT id, user_id FROM api_keys WHERE secret_hash = \(Self.hash(key)) AND revoked_at IS NULL
                ), touched AS (
                    -- A row version per minute at most, not per call.
                    UPDATE api_keys SET last_used_at = now()
                    WHERE id IN (SELECT id FROM k) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
                ), counted AS (
                    INSERT INTO api_usage (user_id, api_key_id, day, count)
                    SELECT user_id, id, (now() AT TIME ZONE 'UTC')::date, 1 FROM k
                    ON CONFLICT (user_id, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), day)
                    DO UPDATE SET count = api_usage.count + 1
                )
                SELECT \(User.qualifiedColumns), k.id FROM k JOIN users u ON u.id = k.user_id
                """
            ).first
        else { return nil }
        var reader = PostgresRow.Reader(row: row)
        let user = try User(&reader)
        return (try reader.next(), user)
    }

    // MARK: Format

    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    static func make() -> String {
        var body = ""
        for _ in 0..<bodyLength { body.append(Character(UnicodeScalar(alphabet[Int(Random.uniform(62))]))) }
        return prefix + body + checksum(body)
    }

    static func checksum(_ body: String) -> String {
        var value = UInt64(CRC32.checksum(Array(body.utf8)))
        var out = [UInt8](repeating: alphabet[0], count: checksumLength)
        for i in stride(from: checksumLength - 1, through: 0, by: -1) {
            out[i] = alphabet[Int(value % 62)]
            value /= 62
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func isWellFormed(_ key: String) -> Bool {
        guard key.hasPrefix(prefix), key.utf8.count == prefix.utf8.count + bodyLength + checksumLength else { return false }
        let rest = key.dropFirst(prefix.count)
        guard rest.utf8.allSatisfy({ alphabet.contains($0) }) else { return false }
        return checksum(String(rest.prefix(bodyLength))) == String(rest.suffix(checksumLength))
    }

    static func visiblePrefix(_ key: String) -> String { String(key.prefix(prefix.count + 8)) }

    static func hash(_ key: String) -> String { Encoding.hex(Digest.sha256(key)) }
}

/// CRC-32 (IEEE 802.3), for key checksums.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
