import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite struct SQLQueryTests {
    @Test func interpolatedValuesBecomeParameters() {
        let email = "a@b.c'; DROP TABLE users; --"
        let limit = 24
        let query: SQLQuery = "SELECT id FROM users WHERE email = \(email) LIMIT \(limit)"
        #expect(query.sql == "SELECT id FROM users WHERE email = $1 LIMIT $2")
        #expect(query.binds == [email, "24"])
        #expect(!query.description.contains("DROP"))
    }

    @Test func optionalsBindNull() {
        let name: String? = nil
        let query: SQLQuery = "UPDATE users SET username = \(name)"
        #expect(query.binds == [nil])
    }

    @Test func fragmentsAreRenumbered() {
        let filter: SQLQuery = "kind = \("upscaled") AND width > \(100)"
        let query: SQLQuery = "SELECT * FROM images WHERE user_id = \("u1") AND \(filter) LIMIT \(5)"
        #expect(query.sql == "SELECT * FROM images WHERE user_id = $1 AND kind = $2 AND width > $3 LIMIT $4")
        #expect(query.binds == ["u1", "upscaled", "100", "5"])
        let joined = query + " OFFSET \(10)"
        #expect(joined.sql.hasSuffix("OFFSET $5"))
    }

    @Test func unsafeSQLIsSplicedAsWritten() {
        let column = "created_at"
        let query: SQLQuery = "SELECT * FROM images ORDER BY \(unsafeSQL: column) DESC"
        #expect(query.sql == "SELECT * FROM images ORDER BY created_at DESC")
        #expect(query.binds.isEmpty)
    }

    @Test func timestampsRoundTripThroughText() throws {
        let date = try #require(Timestamp.parse("2026-11-25 16:50:51.123456+00"))
        #expect(abs(date.timeIntervalSince1970 - 1_795_625_451.123456) < 0.000_01)
        let offset = try #require(Timestamp.parse("2026-11-25 18:50:51+02"))
        #expect(offset.timeIntervalSince1970 == 1_795_625_451)
        #expect(Timestamp.parse(Timestamp.format(date))?.timeIntervalSince1970 == date.timeIntervalSince1970)
    }

    @Test func textArraysEscapeQuotes() {
        #expect(["a", "b\"c", "d\\e"].postgresText == #"{"a","b\"c","d\\e"}"#)
    }
}
