import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitRuntime
@testable import SharedKitStores

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Typed ids: a UUID is checked once where it comes in, and then only ever travels as one.
@Suite struct IdentifierTests {
    /// Upper case, as some clients write them (a literal would be checked by the tests' own conversion).
    let upper: String = "5D3C1A2B-0000-4000-8000-00000000ABCD"

    @Test func onlyAUUIDBecomesAnId() {
        #expect(ID<User>(upper)?.text == "5d3c1a2b-0000-4000-8000-00000000abcd")
        for text in [
            "", "5d3c1a2b", "5d3c1a2b-0000-4000-8000-00000000abc", "5d3c1a2b-0000-4000-8000-00000000abcde",
            "5d3c1a2b00000-4000-8000-00000000abcd", "5d3c1a2b-0000-4000-8000-00000000abcg", "5d3c1a2b-0000-4000-8000-00000000abc\u{e9}",
            "' OR 1=1 --", "5d3c1a2b-0000-4000-8000-00000000ab\u{0}d",
        ] {
            #expect(ID<User>(text) == nil, "\(text) is not a UUID")
        }
    }

    @Test func anIdIsTheSameWhateverItsCase() {
        #expect(ID<User>(upper) == ID<User>(upper.lowercased()))
        #expect("\(ID<User>(upper)!)" == "5d3c1a2b-0000-4000-8000-00000000abcd")
    }

    @Test func jsonCarriesTheTextAndRefusesAnythingElse() throws {
        struct Body: Codable { let imageId: ImageID }
        let body = try JSON.decoder().decode(Body.self, from: Data(#"{"image_id": "0B7F7D8E-1C1A-4C4E-9D55-2F0C2D9B8F11"}"#.utf8))
        #expect(body.imageId.text == "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11")
        #expect(String(decoding: try JSON.encode(body), as: UTF8.self) == #"{"image_id":"0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11"}"#)
        #expect(throws: DecodingError.self) { try JSON.decoder().decode(Body.self, from: Data(#"{"image_id": "x"}"#.utf8)) }
        #expect(String(decoding: JSONWriter.bytes(of: [body.imageId]), as: UTF8.self) == #"["0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11"]"#)
    }

    @Test func aPathParameterThatIsNotAUUIDNamesNothing() throws {
        var request = Request(cgi: ["REQUEST_METHOD": "GET", "REQUEST_URI": "/api/v1/images/x"])
        request.parameters = ["id": "not-a-uuid"]
        #expect(try request.id("id") as ImageID? == nil)
        request.parameters = ["id": "0B7F7D8E-1C1A-4C4E-9D55-2F0C2D9B8F11"]
        #expect(try request.id("id") as ImageID? == "0b7f7d8e-1c1a-4c4e-9d55-2f0c2d9b8f11")
    }

    @Test func itBindsAsTextAndReadsOnlyAUUID() throws {
        let id: GenerationID = "a1b2c3d4-0000-4000-8000-000000000002"
        let query: SQLQuery = "SELECT 1 FROM generations WHERE id = \(id)"
        #expect(query.binds == ["a1b2c3d4-0000-4000-8000-000000000002"])
        #expect(try GenerationID.decode(postgresText: "a1b2c3d4-0000-4000-8000-000000000002") == id)
        #expect(throws: PostgresDecodingError.self) { try GenerationID.decode(postgresText: "a1b2c3d4") }
        #expect(throws: PostgresDecodingError.self) { try GenerationID.decode(postgresText: nil) }
    }
}
