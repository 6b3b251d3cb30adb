import Logging
import SharedKitRuntime
import SharedKitStores

/// Deleting an account removes everything it owns: its rows (images, videos, usage, keys … cascade from
/// `users`), its media files and its sessions. Rows go first in one transaction; files and sessions
/// follow, and a file that cannot be removed is logged, never resurrecting the account.
public struct AccountDeletion {
    let context: Context

    public init(_ context: Context) {
        self.context = context
    }

    /// - Parameter alsoInTransaction: more work for the same transaction (the admin's audit row).
    public func delete(userID: UserID, alsoInTransaction: () throws -> Void = {}) throws {
        let db = context.db
        let keys: [String] = try db.transaction {
            let rows = try db.query(
                """
                SELECT storage_key AS key FROM images WHERE user_id = \(userID) AND storage_key IS NOT NULL
                UNION ALL SELECT thumbnail_key FROM images WHERE user_id = \(userID) AND thumbnail_key IS NOT NULL
                UNION ALL SELECT storage_key FROM videos WHERE user_id = \(userID) AND storage_key IS NOT NULL
                UNION ALL SELECT poster_key FROM videos WHERE user_id = \(userID) AND poster_key IS NOT NULL
                """)
            // The last admin stays (also against their own DELETE /profile): admins are locked in one order,
            // so two admins deleting themselves at once cannot both pass.
            let admins = try db.query("SELECT id FROM users WHERE is_admin ORDER BY id FOR UPDATE").rows
            if admins.count <= 1, try admins.contains(where: { try $0.get("id", as: UserID.self) == userID }) {
                throw HTTPError(.conflict, code: "last_admin", message: "This is the last admin; promote someone else first.")
            }
            try db.execute("DELETE FROM users WHERE id = \(userID)")
            try alsoInTransaction()
            return try rows.rows.map { try $0.get("key", as: String.self) }
        }
        let storage = context.media
        for key in keys {
            do { try storage.delete(key: key) } catch {
                context.logger.error("media file left behind after account deletion", metadata: ["media.key": .string(key)])
            }
        }
        try context.sessions.revokeAll(userID: userID)
    }
}
