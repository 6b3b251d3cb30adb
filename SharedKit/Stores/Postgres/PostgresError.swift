/// An error PostgreSQL reported for a statement. It carries the SQLSTATE so callers can tell a unique
/// violation from anything else; its description never contains query parameters.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public let sqlState: String
    public let message: String
    public let constraint: String?

    public var isUniqueViolation: Bool { sqlState == "23505" }
    public var isForeignKeyViolation: Bool { sqlState == "23503" }
    public var isCheckViolation: Bool { sqlState == "23514" }
    public var isSerializationFailure: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// Connection failures, shutdowns and cancelled statements: the database is not available.
    var meansUnavailable: Bool {
        sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03", "57014", "53300"].contains(sqlState)
    }

    public var description: String {
        "PostgreSQL error \(sqlState): \(message)" + (constraint.map { " (constraint \($0))" } ?? "")
    }
}

/// A value bound to a statement holds a NUL character, which PostgreSQL text cannot store (and a C string
/// would cut short): refused before anything is sent.
public struct UnstorableText: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "text cannot contain NUL characters" }
}
