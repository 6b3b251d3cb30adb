import SharedKit
public import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// OpenAI's Images API (and Chat Completions, for prompt enhancement) over libcurl, or any server that
/// speaks the same API (`OPENAI_BASE_URL`: a self-hosted model on one's own GPU).
///
/// Unlike Replicate it answers with the result: `POST /images/generations` and `POST /images/edits`
/// return the image itself (base64; `gpt-image-*` models always so, the DALL·E ones when asked with
/// `response_format=b64_json`; a `url` answer is fetched). Nothing waits at the provider after an
/// answer, so a failed call is simply tried elsewhere: a provider-side failure is `Unavailable` (the job
/// goes to the next provider and this one cools down), a request OpenAI does not take is `Rejected` (the
/// next provider, no cool-down), and a refusal by the safety system is `Refused` (the prompt is the
/// problem, and no other provider is asked to make it).
public struct OpenAIClient: Sendable {
    /// Which model each task uses.
    public struct Models: Sendable {
        public let image: String
        public let inpaint: String
        public let enhance: String

        init(_ config: Config) {
            image = config.string("OPENAI_MODEL_IMAGE") ?? "gpt-image-1"
            inpaint = config.string("OPENAI_MODEL_INPAINT") ?? "gpt-image-1"
            enhance = config.string("OPENAI_MODEL_ENHANCE") ?? "gpt-4o-mini"
        }
    }

    /// The provider could not make it (down, throttled past the retry budget, a 5xx, our key refused…):
    /// another provider may.
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// The provider refused this job's request itself (a 4xx other than authentication and throttling: a
    /// size or parameter it does not take): another provider may take the job, and this one stays healthy.
    public struct Rejected: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// The safety system refused the prompt (or the image): no provider should be asked again.
    public struct Refused: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// One image of an answer: its bytes (base64 answers), or a URL to fetch within the hour.
    public enum Output: Sendable {
        case bytes([UInt8])
        case url(String)
    }

    let key: String
    let base: String
    let extraHeaders: [(String, String)]
    public let models: Models
    let http: HTTPClient

    /// The largest image upload an edit takes (gpt-image-1: 50 MB; DALL·E 2: 4 MB).
    public static func maxUploadBytes(model: String) -> Int { model.hasPrefix("dall-e") ? 4 * 1024 * 1024 : 50 * 1024 * 1024 }

    /// nil when no `OPENAI_API_KEY` is configured.
    public init?(_ config: Config) {
        guard let key = config.string("OPENAI_API_KEY") else { return nil }
        self.key = key
        let base = config.string("OPENAI_BASE_URL") ?? "https://api.openai.com/v1"
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        var headers: [(String, String)] = []
        if let organization = config.string("OPENAI_ORGANIZATION") { headers.append(("OpenAI-Organization", organization)) }
        if let project = config.string("OPENAI_PROJECT") { headers.append(("OpenAI-Project", project)) }
        extraHeaders = headers
        models = Models(config)
        // Images take tens of seconds; the answer carries them base64 (a few MB).
        let timeout = (try? Self.timeoutSeconds(config)) ?? 120
        http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: timeout * 1000, maxResponseBytes: 64 * 1024 * 1024)
    }

    /// How long one call may take (`OPENAI_TIMEOUT_SECONDS`, 120).
    public static func timeoutSeconds(_ config: Config) throws -> Int {
        try config.integer("OPENAI_TIMEOUT_SECONDS", default: 120, range: 5...600)
    }

    /// The size to ask of a model for an aspect ratio: the model's own sizes (DALL·E 2 has only squares).
    public static func size(model: String, width: Int, height: Int) -> String {
        let landscape = width * 10 > height * 11
        let portrait = height * 10 > width * 11
        switch model {
        case _ where model.hasPrefix("dall-e-2"): return "1024x1024"
        case _ where model.hasPrefix("dall-e-3"): return landscape ? "1792x1024" : portrait ? "1024x1792" : "1024x1024"
        default: return landscape ? "1536x1024" : portrait ? "1024x1536" : "1024x1024"
        }
    }

    /// `gpt-image-*` models always answer base64 and refuse `response_format`; others are asked for it.
    static func asksForBase64(_ model: String) -> Bool { !model.hasPrefix("gpt-image") }

    /// `POST /images/generations`: one image for the prompt.
    public func generate(model: String, prompt: String, size: String) throws -> [Output] {
        var body: [String: JSONValue] = ["model": .string(model), "prompt": .string(prompt), "n": .number(1), "size": .string(size)]
        if Self.asksForBase64(model) { body["response_format"] = .string("b64_json") }
        let answer = try send(path: "/images/generations", body: try JSON.encode(JSONValue.object(body)), contentType: "application/json")
        return try Self.outputs(answer)
    }

    /// `POST /images/edits` (multipart): the image repainted where the mask is fully transparent.
    public func edit(model: String, prompt: String, image: [UInt8], mask: [UInt8]) throws -> [Output] {
        var form = MultipartBody()
        form.file("image", filename: "image.png", contentType: "image/png", image)
        form.file("mask", filename: "mask.png", contentType: "image/png", mask)
        form.field("prompt", prompt)
        form.field("model", model)
        form.field("n", "1")
        if Self.asksForBase64(model) { form.field("response_format", "b64_json") }
        form.finish()
        let answer = try send(path: "/images/edits", body: form.bytes, contentType: form.contentType)
        return try Self.outputs(answer)
    }

    /// `POST /chat/completions`: the assistant's text for an instruction and a user message.
    public func chat(model: String, instruction: String, message: String, maxTokens: Int, temperature: Double) throws -> String {
        let body: JSONValue = .object([
            "model": .string(model),
            "messages": .array([
                .object(["role": .string("system"), "content": .string(instruction)]),
                .object(["role": .string("user"), "content": .string(message)]),
            ]),
            "max_tokens": .number(Double(maxTokens)),
            "temperature": .number(temperature),
        ])
        let answer = try send(path: "/chat/completions", body: try JSON.encode(body), contentType: "application/json")
        guard case .array(let choices)? = answer["choices"], let content = choices.first?["message"]?["content"]?.string else {
            throw Unavailable(description: "chat completion without choices[0].message.content")
        }
        return content
    }

    /// For `atelier doctor`: nil when the key is accepted (GET /models), else what is wrong.
    public func accountProblem() -> String? {
        do {
            let response = try http.send(method: "GET", url: base + "/models", headers: headers(contentType: nil))
            switch response.status {
            case 200...299: return nil
            case 401, 403: return "OPENAI_API_KEY is refused (HTTP \(response.status))"
            default: return "HTTP \(response.status) from \(base)/models"
            }
        } catch {
            return "cannot reach \(base): \(error)"
        }
    }

    func headers(contentType: String?) -> [(String, String)] {
        var headers = [("Authorization", "Bearer \(key)"), ("Accept", "application/json")] + extraHeaders
        if let contentType { headers.append(("Content-Type", contentType)) }
        return headers
    }

    /// The longest a 429's advice is waited for, once; past it the job goes elsewhere.
    static let maxRetryAfterSeconds = 10.0

    /// One POST (sent again once after a short 429, or a connection that never opened); the 2xx body.
    func send(path: String, body: [UInt8], contentType: String) throws -> JSONValue {
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClient.Response
            do {
                response = try http.send(method: "POST", url: base + path, headers: headers(contentType: contentType), body: body)
            } catch let failure as HTTPClient.Failure {
                if failure.notSent, attempt == 1 { continue }
                throw Unavailable(description: "\(failure)")
            }
            if (200...299).contains(response.status) {
                guard let value = response.body.withUnsafeBufferPointer({ JSONValue.parse($0) }) else {
                    throw Unavailable(description: "unreadable answer to POST \(path)")
                }
                return value
            }
            let error = response.body.withUnsafeBufferPointer { JSONValue.parse($0) }?["error"]
            let code = error?["code"]?.string ?? error?["type"]?.string ?? ""
            let message = error?["message"]?.string ?? String(decoding: response.body.prefix(300), as: UTF8.self)
            if response.status == 400, Self.safetyCodes.contains(code) {
                throw Refused(description: "\(code): \(message)")
            }
            if response.status == 429, code != "insufficient_quota", attempt == 1, let wait = Self.retryAfter(response),
                wait <= Self.maxRetryAfterSeconds
            {
                usleep(UInt32(wait * 1_000_000))
                continue
            }
            let problem = "HTTP \(response.status) to POST \(path)\(code.isEmpty ? "" : " (\(code))"): \(message)"
            if (400...499).contains(response.status), ![401, 403, 408, 409, 429].contains(response.status) {
                throw Rejected(description: problem)
            }
            throw Unavailable(description: problem)
        }
    }

    /// The error codes of the safety system's refusals (images and prompts).
    static let safetyCodes: Set<String> = ["content_policy_violation", "moderation_blocked"]

    /// Seconds to wait from `retry-after-ms` (preferred) or `retry-after`.
    static func retryAfter(_ response: HTTPClient.Response) -> Double? {
        if let ms = response.header("retry-after-ms").flatMap(Double.init), ms.isFinite, ms >= 0 { return ms / 1000 }
        if let seconds = response.header("retry-after").flatMap(Double.init), seconds.isFinite, seconds >= 0 { return seconds }
        return nil
    }

    /// `data[].b64_json` or `data[].url` of an images answer.
    static func outputs(_ answer: JSONValue) throws -> [Output] {
        guard case .array(let items)? = answer["data"] else { throw Unavailable(description: "an images answer without data") }
        let outputs: [Output] = items.compactMap { item in
            if let encoded = item["b64_json"]?.string, let bytes = Encoding.fromBase64(encoded) { return .bytes(bytes) }
            if let url = item["url"]?.string, url.hasPrefix("https://") || url.hasPrefix("http://") { return .url(url) }
            return nil
        }
        guard !outputs.isEmpty else { throw Unavailable(description: "an images answer with no image") }
        return outputs
    }

    /// What the user reads when the safety system refused.
    public static let refusalMessage = "The provider's safety filter refused this prompt; try rewording it. Your quota was refunded."
}

/// A `multipart/form-data` body to send: text fields and files.
struct MultipartBody {
    let boundary = "atelier-" + Encoding.hex(Random.bytes(12))
    var bytes: [UInt8] = []

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    private var finished = false

    mutating func field(_ name: String, _ value: String) {
        bytes += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
    }

    mutating func file(_ name: String, filename: String, contentType: String, _ content: [UInt8]) {
        bytes += Array(
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: \(contentType)\r\n\r\n"
                .utf8)
        bytes += content
        bytes += Array("\r\n".utf8)
    }

    mutating func finish() {
        guard !finished else { return }
        finished = true
        bytes += Array("--\(boundary)--\r\n".utf8)
    }
}
