import Logging
import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitRuntime

private struct Widget: Codable, Equatable {
    let name: String
    let count: Int
    let aspectRatio: String?
}

private struct Unexpected: Error {}

@Suite struct RouterTests {
    // The runtime alone: its handlers' context here is nothing at all (the runtime knows no domain).
    let dispatcher = Dispatcher(
        router: Router<Void>()
            .get(
                "/api/v1/widgets/:id",
                { request, _ in
                    try .json([
                        "id": try request.parameter("id"), "q": request.query("q") ?? "",
                        "tags": (request.query["tag"] ?? []).joined(separator: "|"),
                    ])
                }
            )
            .delete("/api/v1/widgets/:id", { _, _ in .empty() })
            .post("/api/v1/widgets", { request, _ in try .json(try request.decode(Widget.self), status: .created) })
            .post("/api/v1/small", maxBodyBytes: 10, { request, _ in .text("\(request.body.count)") })
            .get("/api/v1/cookies", { request, _ in try .json(request.cookies) })
            .get("/api/v1/boom", { _, _ in throw Unexpected() }),
        publicOrigin: "http://127.0.0.1:8080", logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, metrics: nil,
        context: { _ in () }
    )

    func send(_ method: String, _ uri: String, body: String = "", headers: [String: String] = [:]) throws -> (Response, [String: Any]) {
        var params = ["REQUEST_METHOD": method, "REQUEST_URI": uri, "REMOTE_ADDR": "10.1.2.3", "REQUEST_ID": "abc123"]
        for (name, value) in headers { params["HTTP_" + name.uppercased().replacing("-", with: "_")] = value }
        if let type = headers["Content-Type"] { params["CONTENT_TYPE"] = type }
        let bytes = Array(body.utf8)
        if !bytes.isEmpty { params["CONTENT_LENGTH"] = String(bytes.count) }
        let (response, _) = dispatcher.respond(to: params, readBody: { limit in Array(bytes.prefix(limit)) })
        return (response, try JSONTestParser.object(response.body))
    }

    @Test func routeParametersAndPercentEncodedQuery() throws {
        let (response, body) = try send("GET", "/api/v1/widgets/a%20b?q=caf%C3%A9+au+lait&tag=x&tag=y%26z")
        #expect(response.status == .ok)
        #expect(body["id"] as? String == "a b")
        #expect(body["q"] as? String == "café au lait")
        #expect(body["tags"] as? String == "x|y&z")
    }

    @Test func unknownPathIs404() throws {
        let (response, body) = try send("GET", "/api/v1/nothing")
        #expect(response.status == .notFound)
        #expect(JSONTestParser.errorCode(body) == "not_found")
    }

    @Test func wrongMethodIs405WithAllow() throws {
        let (response, body) = try send("PUT", "/api/v1/widgets/1")
        #expect(response.status == .methodNotAllowed)
        #expect(response.header("Allow") == "GET, DELETE, HEAD")
        #expect(JSONTestParser.errorCode(body) == "method_not_allowed")
    }

    @Test func cookiesAreParsed() throws {
        let (_, body) = try send("GET", "/api/v1/cookies", headers: ["Cookie": "session=abc; theme=\"dark\"; session=second"])
        #expect(body["session"] as? String == "abc")
        #expect(body["theme"] as? String == "dark")
    }

    @Test func bodyOverTheCapIs413() throws {
        let (response, body) = try send("POST", "/api/v1/small", body: "12345678901")
        #expect(response.status == .payloadTooLarge)
        #expect(JSONTestParser.errorCode(body) == "body_too_large")
        let (ok, _) = try send("POST", "/api/v1/small", body: "1234567890")
        #expect(ok.status == .ok)
    }

    @Test func jsonBodyDecodes() throws {
        let (response, body) = try send(
            "POST", "/api/v1/widgets", body: #"{"name":"a","count":2,"aspect_ratio":"16:9"}"#,
            headers: ["Content-Type": "application/json; charset=utf-8"])
        #expect(response.status == .created)
        #expect(body["aspect_ratio"] as? String == "16:9")
    }

    @Test func malformedJSONIs400() throws {
        let (response, body) = try send("POST", "/api/v1/widgets", body: #"{"name": "a",,}"#, headers: ["Content-Type": "application/json"])
        #expect(response.status == .badRequest)
        #expect(JSONTestParser.errorCode(body) == "invalid_json")
    }

    @Test func wrongFieldTypeNamesTheField() throws {
        let (response, body) = try send(
            "POST", "/api/v1/widgets", body: #"{"name":"a","count":"two"}"#, headers: ["Content-Type": "application/json"])
        #expect(response.status == .badRequest)
        #expect(JSONTestParser.errorCode(body) == "invalid_field")
        #expect(JSONTestParser.errorMessage(body)?.contains("'count'") == true)
        #expect(JSONTestParser.errorMessage(body)?.contains("an integer") == true)

        let (_, missing) = try send("POST", "/api/v1/widgets", body: #"{"count":2}"#, headers: ["Content-Type": "application/json"])
        #expect(JSONTestParser.errorCode(missing) == "missing_field")
        #expect(JSONTestParser.errorMessage(missing)?.contains("'name'") == true)

        let (_, snake) = try send(
            "POST", "/api/v1/widgets", body: #"{"name":"a","count":1,"aspect_ratio":5}"#, headers: ["Content-Type": "application/json"])
        #expect(JSONTestParser.errorMessage(snake)?.contains("'aspect_ratio'") == true)
    }

    @Test func unsupportedContentTypeIs415() throws {
        let (response, body) = try send(
            "POST", "/api/v1/widgets", body: "name=a", headers: ["Content-Type": "application/x-www-form-urlencoded"])
        #expect(response.status == .unsupportedMediaType)
        #expect(JSONTestParser.errorCode(body) == "unsupported_media_type")
    }

    @Test func unexpectedErrorIs500WithRequestIDAndNoDetail() throws {
        let (response, body) = try send("GET", "/api/v1/boom")
        #expect(response.status == .internalServerError)
        let error = body["error"] as? [String: Any]
        #expect(error?["code"] as? String == "internal_error")
        #expect(error?["request_id"] as? String == "abc123")
        #expect((error?["message"] as? String)?.contains("Unexpected") == false)
    }

    @Test func headAnswersLikeGetWithoutBody() throws {
        let (response, _) = try send("HEAD", "/api/v1/widgets/7")
        #expect(response.status == .ok)
        #expect(response.body.isEmpty)
    }

    @Test func requestIDFromNginxOrMadeHere() {
        #expect(Request(cgi: ["REQUEST_ID": "0123abcd"]).id == "0123abcd")
        let made = Request(cgi: ["REQUEST_ID": "bad id\n"]).id
        #expect(made.count == 32)
    }

    @Test func clientAddressComesFromRemoteAddrNotForwardedFor() {
        let request = Request(cgi: ["REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "1.2.3.4"])
        #expect(request.clientAddress == "10.0.0.9")
    }
}

@Suite struct NULTests {
    @Test func escapedNULIsFoundButAnEscapedBackslashIsNot() {
        #expect(JSON.containsEscapedNUL(Array(#"{"a":"x\u0000y"}"#.utf8)))
        #expect(JSON.containsEscapedNUL(Array(#"{"a":"\U0000"}"#.utf8)))
        #expect(!JSON.containsEscapedNUL(Array(#"{"a":"\\u0000"}"#.utf8)))
        #expect(!JSON.containsEscapedNUL(Array(#"{"a":"u0000"}"#.utf8)))
    }
}
