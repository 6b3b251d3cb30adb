import SharedKitCore

/// `multipart/form-data` bodies (RFC 7578): named parts, each a field or a file.
public struct MultipartForm: Sendable {
    public struct Part: Sendable {
        public let name: String
        public let filename: String?
        public let contentType: String?
        public let body: [UInt8]

        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let parts: [Part]

    public func part(_ name: String) -> Part? { parts.first { $0.name == name } }

    /// A text field's value, trimmed.
    public func field(_ name: String) -> String? {
        part(name).map { $0.text.trimmingWhitespace().description }
    }

    public static func parse(_ request: Request) throws -> MultipartForm {
        guard request.mediaType == "multipart/form-data", let boundary = boundary(request.header("content-type") ?? "") else {
            throw HTTPError(
                .unsupportedMediaType, code: "unsupported_media_type",
                message: "Send this request as multipart/form-data.")
        }
        guard let parts = split(request.body, boundary: Array(("--" + boundary).utf8)) else {
            throw HTTPError(.badRequest, code: "invalid_multipart", message: "The multipart body could not be read.")
        }
        return MultipartForm(parts: parts)
    }

    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingWhitespace().lowercased() == "boundary" else { continue }
            var value = pair[1].trimmingWhitespace()
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            return value.isEmpty || value.count > 200 ? nil : String(value)
        }
        return nil
    }

    static func split(_ body: [UInt8], boundary: [UInt8]) -> [Part]? {
        var parts: [Part] = []
        guard var cursor = find(boundary, in: body, from: 0) else { return nil }
        while true {
            var start = cursor + boundary.count
            if start + 1 < body.count, body[start] == 0x2D, body[start + 1] == 0x2D { return parts }  // closing "--"
            guard start + 1 < body.count, body[start] == 0x0D, body[start + 1] == 0x0A else { return nil }
            start += 2
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: body, from: start) else { return nil }
            let headers = String(decoding: body[start..<headerEnd], as: UTF8.self)
            guard let next = find([0x0D, 0x0A] + boundary, in: body, from: headerEnd + 4) else { return nil }
            guard let part = makePart(headers: headers, body: Array(body[(headerEnd + 4)..<next])) else { return nil }
            parts.append(part)
            cursor = next + 2
        }
    }

    static func makePart(headers: String, body: [UInt8]) -> Part? {
        var name: String?
        var filename: String?
        var type: String?
        for line in headers.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let header = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            if header == "content-type" { type = String(value) }
            guard header == "content-disposition" else { continue }
            for item in value.split(separator: ";").dropFirst() {
                let pair = item.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                var v = pair[1].trimmingWhitespace()
                if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
                switch pair[0].trimmingWhitespace().lowercased() {
                case "name": name = String(v)
                case "filename": filename = String(v)
                default: break
                }
            }
        }
        guard let name else { return nil }
        return Part(name: name, filename: filename, contentType: type, body: body)
    }

    /// The first occurrence of `needle` at or after `start`, by Knuth–Morris–Pratt: linear in the
    /// haystack whatever its bytes, so a crafted body full of near-boundaries cannot make the search
    /// quadratic as a naive one is (each mismatch falls back through the needle's own prefixes instead of
    /// starting over one byte further).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start >= 0, start <= haystack.count - needle.count else { return nil }
        // fallback[i]: the length of the longest proper prefix of needle[0...i] that is also its suffix.
        var fallback = [Int](repeating: 0, count: needle.count)
        var length = 0
        for i in 1..<max(needle.count, 1) {
            while length > 0, needle[i] != needle[length] { length = fallback[length - 1] }
            if needle[i] == needle[length] { length += 1 }
            fallback[i] = length
        }
        return haystack.withUnsafeBufferPointer { h in
            var matched = 0
            for i in start..<h.count {
                while matched > 0, h[i] != needle[matched] { matched = fallback[matched - 1] }
                if h[i] == needle[matched] { matched += 1 }
                if matched == needle.count { return i - needle.count + 1 }
            }
            return nil
        }
    }

}
