import Testing
@testable import SharedKit

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

    /// The shape of the crafted body that made the old search quadratic: a long boundary of one repeated
    /// byte and a part made of almost-boundaries. The part must still come out whole.
    @Test func aPartFullOfNearBoundariesParsesWhole() throws {
        let boundary = String(repeating: "a", count: 200)
        let nearMiss = "\r\n--" + String(repeating: "a", count: 199) + "b"
        let content = String(repeating: nearMiss, count: 500)
        let body = Array(("--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            + "Content-Type: image/png\r\n\r\n\(content)\r\n--\(boundary)\r\n"
            + "Content-Disposition: form-data; name=\"mode\"\r\n\r\nupscale\r\n--\(boundary)--\r\n").utf8)
        let parts = try #require(MultipartForm.split(body, boundary: Array("--\(boundary)".utf8)))
        #expect(parts.map(\.name) == ["image", "mode"])
        #expect(parts[0].body == Array(content.utf8))
        #expect(parts[0].filename == "x.png" && parts[0].contentType == "image/png")
        #expect(parts[1].body == Array("upscale".utf8))
    }
}
