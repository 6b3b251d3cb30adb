public import SharedKitCore
public import SharedKitStores

/// The audit trail of admin actions. Rows are written inside the transaction of the change they record.
public struct AuditLog {
    let db: PostgresConnection

    public init(_ db: PostgresConnection) {
        self.db = db
    }

    /// - Parameters: before/after are the changed fields only, as JSON objects.
    public func record(
        actorID: UserID?, actorLabel: String, action: String, targetUserID: UserID?, targetEmail: String?,
        before: [String: JSONValue]?, after: [String: JSONValue]?, requestID: String?
    ) throws {
        try db.execute(
            """
            INSERT INTO audit_log (actor_id, actor_label, action, target_user_id, target_email, before, after, request_id)
            VALUES (\(actorID), \(actorLabel), \(action), \(targetUserID), \(targetEmail),
                    \(before.map { PostgresJSON(JSONValue.object($0)) }), \(after.map { PostgresJSON(JSONValue.object($0)) }), \(requestID))
            """)
    }
}
