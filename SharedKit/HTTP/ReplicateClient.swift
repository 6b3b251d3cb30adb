#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import SharedKit

/// Replicate's predictions API over libcurl. Creating retries 429 and 5xx a bounded number of times,
/// honouring Retry-After; provider errors become messages a user understands.
public struct ReplicateClient: Sendable {
    public struct Prediction: Decodable, Sendable {
        public let id: String
        public let status: String
        public let output: JSONValue?
        public let error: JSONValue?

        public var isTerminal: Bool { ["succeeded", "failed", "canceled", "aborted"].contains(status) }
    }

    /// Which model each task uses: `owner/name` (an official model) or `owner/name:version`.
    public struct Models: Sendable {
        public let image: String
        public let upscale: String
        public let inpaint: String
        public let video: String
        public let enhance: String

        init(_ config: Config) {
            image = config.string("REPLICATE_MODEL_IMAGE") ?? "black-forest-labs/flux-schnell"
            upscale = config.string("REPLICATE_MODEL_UPSCALE")
                ?? "nightmareai/real-esrgan:f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
            inpaint = config.string("REPLICATE_MODEL_INPAINT") ?? "black-forest-labs/flux-fill-dev"
            video = config.string("REPLICATE_MODEL_VIDEO") ?? "minimax/video-01"
            enhance = config.string("REPLICATE_MODEL_ENHANCE") ?? "meta/meta-llama-3-8b-instruct"
        }
    }

    let token: String
    let base: String
    let webhookURL: String
    public let models: Models
    let http: HTTPClient
    let maxAttempts = 3

    /// nil when no `REPLICATE_API_TOKEN` is configured: the embedded provider is used instead.
    public init?(_ config: Config) {
        guard let token = config.string("REPLICATE_API_TOKEN") else { return nil }
        self.token = token
        let base = config.string("REPLICATE_API_BASE") ?? "https://api.replicate.com/v1"
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        webhookURL = config.publicBaseURL + "/hooks/replicate"
        models = Models(config)
        http = HTTPClient(connectTimeoutMs: 3000, timeoutMs: 15_000, maxResponseBytes: 2 * 1024 * 1024)
    }

    /// Starts a prediction that reports back through the webhook.
    public func create(model: String, input: [String: JSONValue]) throws -> Prediction {
        var body: [String: JSONValue] = [
            "input": .object(input),
            "webhook": .string(webhookURL),
            "webhook_events_filter": .array([.string("start"), .string("completed")]),
        ]
        let path: String
        if let colon = model.firstIndex(of: ":") {
            body["version"] = .string(String(model[model.index(after: colon)...]))
            path = "/predictions"
        } else {
            path = "/models/\(model)/predictions"
        }
        return try send("POST", path, body: try JSON.encode(JSONValue.object(body)))
    }

    /// Runs a short prediction synchronously (`Prefer: wait`), polling briefly if it is not done.
    public func run(model: String, input: [String: JSONValue], waitSeconds: Int = 20) throws -> Prediction {
        let path = model.contains(":") ? "/predictions" : "/models/\(model)/predictions"
        var body: [String: JSONValue] = ["input": .object(input)]
        if let colon = model.firstIndex(of: ":") { body["version"] = .string(String(model[model.index(after: colon)...])) }
        var prediction = try send("POST", path, body: try JSON.encode(JSONValue.object(body)), extraHeaders: [("Prefer", "wait=\(waitSeconds)")])
        let deadline = Monotonic.now() + Int64(waitSeconds) * 1_000_000_000
        while !prediction.isTerminal, Monotonic.now() < deadline {
            usleep(500_000)
            prediction = try get(prediction.id)
        }
        return prediction
    }

    public func get(_ id: String) throws -> Prediction {
        try send("GET", "/predictions/\(Self.escape(id))", body: nil)
    }

    public func cancel(_ id: String) throws -> Prediction {
        try send("POST", "/predictions/\(Self.escape(id))/cancel", body: nil)
    }

    func send(_ method: String, _ path: String, body: [UInt8]?, extraHeaders: [(String, String)] = []) throws -> Prediction {
        var headers = [("Authorization", "Bearer \(token)"), ("Accept", "application/json")] + extraHeaders
        if body != nil { headers.append(("Content-Type", "application/json")) }
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClient.Response
            do {
                response = try http.send(method: method, url: base + path, headers: headers, body: body)
            } catch {
                if attempt < maxAttempts { backoff(attempt, retryAfter: nil); continue }
                throw DependencyUnavailable(.provider, detail: "\(error)")
            }
            switch response.status {
            case 200...299:
                do {
                    return try JSON.decoder().decode(Prediction.self, from: Data(response.body))
                } catch {
                    throw DependencyUnavailable(.provider, detail: "unreadable prediction: \(error)")
                }
            case 429, 500...599:
                if attempt < maxAttempts {
                    backoff(attempt, retryAfter: response.header("Retry-After").flatMap { Double($0) })
                    continue
                }
                throw DependencyUnavailable(.provider, detail: "HTTP \(response.status) after \(attempt) attempts")
            default:
                throw DependencyUnavailable(.provider, detail: "HTTP \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            }
        }
    }

    /// Retry-After when given (capped), else exponential with jitter.
    func backoff(_ attempt: Int, retryAfter: Double?) {
        let seconds = min(retryAfter ?? (0.25 * Double(1 << attempt)) * (0.5 + Double(Random.uniform(1000)) / 1000), 5)
        usleep(UInt32(seconds * 1_000_000))
    }

    static func escape(_ id: String) -> String {
        String(id.unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }.map(Character.init))
    }

    /// The output files of a finished prediction: a string, or a list of strings (URLs or data URIs).
    public static func outputFiles(_ output: JSONValue?) -> [String] {
        switch output {
        case .string(let value)?: return [value]
        case .array(let items)?: return items.compactMap(\.string)
        default: return []
        }
    }

    /// Text output (language models stream tokens, joined with nothing).
    public static func outputText(_ output: JSONValue?) -> String {
        switch output {
        case .string(let value)?: return value
        case .array(let items)?: return items.compactMap(\.string).joined()
        default: return ""
        }
    }

    /// A provider's error as a sentence for the user.
    public static func userMessage(for error: JSONValue?, status: String) -> String {
        let raw = error?.string?.lowercased() ?? ""
        if raw.contains("nsfw") || raw.contains("safety") || raw.contains("sensitive") || raw.contains("flagged") {
            return "The provider's safety filter refused this prompt; try rewording it. Your quota was refunded."
        }
        if status == "canceled" || status == "aborted" {
            return "The job was canceled before it finished. Your quota was refunded."
        }
        return "The provider could not make this; please try again. Your quota was refunded."
    }
}
