import Testing

@testable import SharedKit
@testable import SharedKitRuntime

@Suite struct MultipartTests {
    @Test func findsEveryOccurrenceFromTheGivenOffset() {
        let haystack = Array("xxabcabcxabc".utf8)
        #expect(MultipartForm.find(Array("abc".utf8), in: haystack, from: 0) == 2)
        #expect(MultipartForm.find(Array("abc".utf8), in: haystack, from: 3) == 5)
        #expect(MultipartForm.find(Array("abc".utf8), in: haystack, from: 6) == 9)
        #expect(MultipartForm.find(Array("abc".utf8), in: haystack, from: 10) == nil)
        #expect(MultipartForm.find(Array("abcd".utf8), in: haystack, from: 0) == nil)
        #expect(MultipartForm.find([], in: haystack, from: 0) == nil)
        #expect(MultipartForm.find(Array("a".utf8), in: [], from: 0) == nil)
    }

    /// The shape of the crafted body that made the old search quadratic: a boundary of 200 dashes and a
    /// part made of runs of 201 dashes, each one short of "--" + boundary (the naive search compared up to
    /// 200 bytes at every position: about a second for 9 MiB, against 46 ms now). The part comes out whole.
    @Test func aPartFullOfNearBoundariesParsesWhole() throws {
        let boundary = String(repeating: "-", count: 200)
        let nearMiss = String(repeating: "-", count: 201) + "x"
        let content = String(repeating: nearMiss, count: 500)
        let body = Array(
            ("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                + "Content-Type: image/png\r\n\r\n\(content)\r\n--\(boundary)\r\n"
                + "Content-Disposition: form-data; name=\"mode\"\r\n\r\nupscale\r\n--\(boundary)--\r\n").utf8)
        let parts = try #require(MultipartForm.split(body, boundary: Array("--\(boundary)".utf8)))
        #expect(parts.map(\.name) == ["image", "mode"])
        #expect(parts[0].body == Array(content.utf8))
        #expect(parts[0].filename == "x.png" && parts[0].contentType == "image/png")
        #expect(parts[1].body == Array("upscale".utf8))
    }

    static func form(_ boundary: String, _ parts: [(name: String, body: String)], closed: Bool = true) -> [UInt8] {
        var text = ""
        for part in parts {
            text += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(part.name)\"\r\n\r\n\(part.body)\r\n"
        }
        if closed { text += "--\(boundary)--\r\n" }
        return Array(text.utf8)
    }

    @Test func aBodyWithoutItsClosingBoundaryIsRefused() {
        let whole = Self.form("b0undary", [("mode", "upscale"), ("scale", "2")])
        #expect(MultipartForm.split(whole, boundary: Array("--b0undary".utf8))?.map(\.name) == ["mode", "scale"])
        let unclosed = Self.form("b0undary", [("mode", "upscale"), ("scale", "2")], closed: false)
        #expect(MultipartForm.split(unclosed, boundary: Array("--b0undary".utf8)) == nil)
        let cut = Array(whole.dropLast(12))  // ends inside the last part's value
        #expect(MultipartForm.split(cut, boundary: Array("--b0undary".utf8)) == nil)
    }

    @Test func theBoundaryIsReadQuotedOrNotAmongOtherParameters() {
        #expect(MultipartForm.boundary("multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartForm.boundary("multipart/form-data; charset=utf-8; Boundary=abc") == "abc")
        #expect(MultipartForm.boundary("multipart/form-data; boundary=\"a:b=c d'(x)\"") == "a:b=c d'(x)")
        #expect(MultipartForm.boundary("multipart/form-data; boundary=\"\"") == nil)
        #expect(MultipartForm.boundary("multipart/form-data") == nil)
        #expect(MultipartForm.boundary("multipart/form-data; boundary=" + String(repeating: "x", count: 201)) == nil)
        // A quoted boundary with '=' and spaces delimits parts like any other.
        let body = Self.form("a:b=c d'(x)", [("prompt", "a red kite")])
        #expect(MultipartForm.split(body, boundary: Array("--a:b=c d'(x)".utf8))?.first?.body == Array("a red kite".utf8))
    }

    @Test func lineBreaksAndDashesInsideABodyAreKept() throws {
        let value = "line one\r\nline two\r\n--not the boundary\r\n--b0undar\r\n\r\n"
        let parts = try #require(
            MultipartForm.split(
                Self.form("b0undary", [("prompt", value), ("mode", "inpaint")]),
                boundary: Array("--b0undary".utf8)))
        #expect(parts.map(\.name) == ["prompt", "mode"])
        #expect(parts[0].body == Array(value.utf8))
        #expect(parts[1].body == Array("inpaint".utf8))
    }
}
