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

    /// The shape of the crafted body that made the old search quadratic: a boundary of 200 dashes and a
    /// part made of runs of 201 dashes, each one short of "--" + boundary (the naive search compared up to
    /// 200 bytes at every position: about a second for 9 MiB, against 46 ms now). The part comes out whole.
    @Test func aPartFullOfNearBoundariesParsesWhole() throws {
        let boundary = String(repeating: "-", count: 200)
        let nearMiss = String(repeating: "-", count: 201) + "x"
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
