public import SharedKitCore
public import SharedKitStores

#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// An account as the database holds it (without the password hash).
public struct User: Decodable, PostgresRecord, Sendable {
    public let id: UserID
    public let email: String
    public let username: String?
    public let verified: Bool
    public let isAdmin: Bool
    public let premiumUntil: Date?
    public let quotaPeriodStart: Date
    public let quotaUsed: Int
    public let quotaOverride: Int?
    public let createdAt: Date
    public let lastLoginAt: Date?

    /// The columns `User` decodes from, for SELECT lists.
    public static let columns: SQLQuery = """
        id, email, username, verified, is_admin, premium_until, quota_period_start, quota_used, quota_override, \
        created_at, last_login_at
        """

    /// The same columns of the table aliased `u`, for joins.
    public static let qualifiedColumns: SQLQuery = """
        u.id, u.email, u.username, u.verified, u.is_admin, u.premium_until, u.quota_period_start, u.quota_used, \
        u.quota_override, u.created_at, u.last_login_at
        """

    public func isPremium(at now: Date) -> Bool { premiumUntil.map { $0 > now } ?? false }
}

extension User {
    /// The columns in the order of `columns`.
    public init(_ row: inout PostgresRow.Reader) throws {
        self.init(
            id: try row.next(), email: try row.next(), username: try row.next(), verified: try row.next(),
            isAdmin: try row.next(), premiumUntil: try row.next(), quotaPeriodStart: try row.next(),
            quotaUsed: try row.next(), quotaOverride: try row.next(), createdAt: try row.next(), lastLoginAt: try row.next())
    }
}

/// The user as the API shows it to its owner.
public struct UserView: Encodable, Sendable {
    public struct Premium: Encodable, JSONWritable, Sendable {
        public let active: Bool
        public let until: Date?

        public func write(to json: inout JSONWriter) {
            json.object { o in
                o.field("active", active)
                o.field("until", until)
            }
        }

        // Absent values are written as null, so every key of the documented shape is always there.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(active, forKey: .active)
            try container.encode(until, forKey: .until)
        }

        enum CodingKeys: String, CodingKey { case active, until }
    }

    public let id: UserID
    public let email: String
    public let username: String?
    public let verified: Bool
    public let isAdmin: Bool
    public let premium: Premium
    public let createdAt: Date

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(email, forKey: .email)
        try container.encode(username, forKey: .username)
        try container.encode(verified, forKey: .verified)
        try container.encode(isAdmin, forKey: .isAdmin)
        try container.encode(premium, forKey: .premium)
        try container.encode(createdAt, forKey: .createdAt)
    }

    enum CodingKeys: String, CodingKey { case id, email, username, verified, isAdmin, premium, createdAt }

    public init(_ user: User, now: Date) {
        id = user.id
        email = user.email
        username = user.username
        verified = user.verified
        isAdmin = user.isAdmin
        premium = Premium(active: user.isPremium(at: now), until: user.premiumUntil)
        createdAt = user.createdAt
    }
}

/// Reads and changes accounts.
public struct Users {
    let db: PostgresConnection

    public init(_ db: PostgresConnection) {
        self.db = db
    }

    public func find(id: UserID) throws -> User? {
        return try db.query("SELECT \(User.columns) FROM users WHERE id = \(id)").records(User.self).first
    }

    public func find(email: String) throws -> User? {
        try db.query("SELECT \(User.columns) FROM users WHERE email = \(email)").records(User.self).first
    }

    /// The stored argon2id hash, for verification only.
    public func passwordHash(id: UserID) throws -> String? {
        try db.query("SELECT password_hash FROM users WHERE id = \(id)").first?.get("password_hash")
    }

    public func passwordHash(email: String) throws -> (id: UserID, hash: String, verified: Bool)? {
        guard let row = try db.query("SELECT id, password_hash, verified FROM users WHERE email = \(email)").first else { return nil }
        return (try row.get("id"), try row.get("password_hash"), try row.get("verified"))
    }

    /// Whether `password` is the account's (false for an over-long one, unchecked, or an unknown id).
    public func verifyPassword(id: UserID, _ password: String) throws -> Bool {
        guard password.utf8.count <= AccountRules.maximumPasswordBytes, let hash = try passwordHash(id: id) else { return false }
        return PasswordHasher().verify(password, against: hash)
    }

    public func setPassword(id: UserID, hash: String) throws {
        try db.execute("UPDATE users SET password_hash = \(hash), updated_at = now() WHERE id = \(id)")
    }

    public func recordLogin(id: UserID) throws {
        try db.execute("UPDATE users SET last_login_at = now() WHERE id = \(id)")
    }
}

/// Accounts are named by `ID<User>` everywhere: in rows, sessions, Redis keys and every lookup.
public typealias UserID = ID<User>
