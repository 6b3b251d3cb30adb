public import SharedKit
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

/// Replicate's predictions API over libcurl; provider errors become messages a user understands.
///
/// Retries follow Replicate's own clients: a GET is retried after 429, 5xx and transport errors; a POST
/// (which creates a billed prediction, or cancels one) only after 429 (refused, so nothing was created) or
/// when the request provably never left this machine. After any other failure a POST may have been acted
/// on, and sending it again could start a second billed prediction: `create` then throws `Uncertain`, and
/// the job is found later through its webhook URL, which names the generation (`?generation=`).
/// Retry-After is honoured up to 30 s (Replicate's limits reset on that scale) within a retry budget; a
/// create still throttled after it throws `Throttled`, and the job is started later by maintenance-cron.
public struct ReplicateClient: Sendable {
    public struct Prediction: Decodable, Sendable {
        public let id: String
        public let status: String
        public let output: JSONValue?
        public let error: JSONValue?
        /// The webhook URL the prediction was created with (echoed in every prediction object).
        public let webhook: String?

        public var isTerminal: Bool { ["succeeded", "failed", "canceled", "aborted"].contains(status) }

        /// The generation named in the webhook URL's `generation` parameter, if it is a UUID.
        public var generationReference: GenerationID? {
            guard let webhook, let query = webhook.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
            for pair in query.split(separator: "&") where pair.hasPrefix("generation=") {
                let value = String(pair.dropFirst("generation=".count))
                return GenerationID(value)
            }
            return nil
        }
    }

    /// A POST that failed in a way that does not say whether Replicate acted on it.
    public struct Uncertain: Error, CustomStringConvertible {
        public let description: String
    }

    /// A create Replicate kept refusing with 429 for longer than the retry budget: nothing was created.
    public struct Throttled: Error, CustomStringConvertible {
        public let description: String
    }

    struct Page: Decodable {
        let results: [Prediction]
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
            upscale =
                config.string("REPLICATE_MODEL_UPSCALE")
                ?? "nightmareai/real-esrgan:f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
            inpaint = config.string("REPLICATE_MODEL_INPAINT") ?? "black-forest-labs/flux-fill-dev"
            video = config.string("REPLICATE_MODEL_VIDEO") ?? "minimax/video-01"
            enhance = config.string("REPLICATE_MODEL_ENHANCE") ?? "meta/meta-llama-3-8b-instruct"
        }

        public func model(for task: Generations.Task) -> String {
            switch task {
            case .image: image
            case .upscale: upscale
            case .inpaint: inpaint
            case .video: video
            }
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
    /// `reference` (a generation id) goes into the webhook URL, so the prediction can be recognised even
    /// if the answer to this request is lost.
    public func create(model: String, input: [String: JSONValue], reference: GenerationID) throws -> Prediction {
        var body: [String: JSONValue] = [
            "input": .object(input),
            "webhook": .string(webhookURL + "?generation=" + reference.text),
            "webhook_events_filter": .array([.string("start"), .string("completed")]),
        ]
        let path: String
        if let colon = model.firstIndex(of: ":") {
            body["version"] = .string(String(model[model.index(after: colon)...]))
            path = "/predictions"
        } else {
            path = "/models/\(model)/predictions"
        }
        return try send("POST", path, body: try JSON.encode(JSONValue.object(body)), throttledThrows: true)
    }

    /// For `atelier doctor`: nil when the token is accepted (GET /v1/account), else what is wrong.
    public func accountProblem() -> String? {
        problem(path: "/account", notFound: "the account endpoint was not found at \(base)")
    }

    /// For `atelier doctor`: nil when the model exists (GET /v1/models/{owner}/{name}), else what is wrong.
    public func modelProblem(_ model: String) -> String? {
        let name = model.split(separator: ":").first.map(String.init) ?? model
        return problem(path: "/models/\(name)", notFound: "no model \(name) on Replicate")
    }

    func problem(path: String, notFound: String) -> String? {
        let response: HTTPClient.Response
        do {
            response = try http.send(method: "GET", url: base + path, headers: [("Authorization", "Bearer \(token)")])
        } catch {
            return "cannot reach Replicate: \(error)"
        }
        switch response.status {
        case 200...299: return nil
        case 401, 403: return "REPLICATE_API_TOKEN is refused (HTTP \(response.status))"
        case 404: return notFound
        default: return "HTTP \(response.status) from \(path)"
        }
    }

    /// The prediction created for `reference`, among the 100 newest (GET /v1/predictions), if any.
    public func find(reference: GenerationID) throws -> Prediction? {
        let response = try sendRaw("GET", "/predictions", body: nil, extraHeaders: [])
        guard let page = try? JSON.decoder().decode(Page.self, from: Data(response)) else {
            throw DependencyUnavailable(.provider, detail: "unreadable prediction list")
        }
        return page.results.first { $0.generationReference == reference }
    }

    /// Runs a short prediction synchronously (`Prefer: wait`), polling briefly if it is not done.
    public func run(model: String, input: [String: JSONValue], waitSeconds: Int = 20) throws -> Prediction {
        let path = model.contains(":") ? "/predictions" : "/models/\(model)/predictions"
        var body: [String: JSONValue] = ["input": .object(input)]
        if let colon = model.firstIndex(of: ":") { body["version"] = .string(String(model[model.index(after: colon)...])) }
        // The connection must outlast the wait Replicate is asked for, or every slow answer is a timeout.
        var patient = http
        patient.timeoutMs = max(http.timeoutMs, (waitSeconds + 5) * 1000)
        var prediction = try send(
            "POST", path, body: try JSON.encode(JSONValue.object(body)),
            extraHeaders: [("Prefer", "wait=\(waitSeconds)")], client: patient)
        let deadline = Monotonic.now() + Int64(waitSeconds) * 1_000_000_000
        while !prediction.isTerminal, Monotonic.now() < deadline {
            usleep(500_000)
            prediction = try get(prediction.id)
        }
        // Not done in time: the caller moves on without it, so stop paying for it.
        if !prediction.isTerminal { _ = try? cancel(prediction.id) }
        return prediction
    }

    public func get(_ id: String) throws -> Prediction {
        try send("GET", "/predictions/\(Self.escape(id))", body: nil)
    }

    public func cancel(_ id: String) throws -> Prediction {
        try send("POST", "/predictions/\(Self.escape(id))/cancel", body: nil)
    }

    func send(
        _ method: String, _ path: String, body: [UInt8]?, extraHeaders: [(String, String)] = [],
        client: HTTPClient? = nil, throttledThrows: Bool = false
    ) throws -> Prediction {
        let response = try sendRaw(method, path, body: body, extraHeaders: extraHeaders, client: client, throttledThrows: throttledThrows)
        do {
            return try JSON.decoder().decode(Prediction.self, from: Data(response))
        } catch {
            // A 2xx we cannot read: for a POST the prediction may well exist.
            if method != "GET" { throw Uncertain(description: "unreadable answer to \(method) \(path): \(error)") }
            throw DependencyUnavailable(.provider, detail: "unreadable prediction: \(error)")
        }
    }

    /// One call with the retries its method allows (see the type's comment); the 2xx body.
    func sendRaw(
        _ method: String, _ path: String, body: [UInt8]?, extraHeaders: [(String, String)],
        client: HTTPClient? = nil, throttledThrows: Bool = false
    ) throws -> [UInt8] {
        let http = client ?? self.http
        var headers = [("Authorization", "Bearer \(token)"), ("Accept", "application/json")] + extraHeaders
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let idempotent = method == "GET"
        let deadline = Monotonic.now() + Int64(Self.retryBudgetSeconds) * 1_000_000_000
        var attempt = 0
        while true {
            attempt += 1
            let response: HTTPClient.Response
            do {
                response = try http.send(method: method, url: base + path, headers: headers, body: body)
            } catch let failure as HTTPClient.Failure {
                if (idempotent || failure.notSent), attempt < maxAttempts, wait(attempt, retryAfter: nil, deadline: deadline) { continue }
                if !idempotent && !failure.notSent { throw Uncertain(description: "\(failure)") }
                throw DependencyUnavailable(.provider, detail: "\(failure)")
            }
            switch response.status {
            case 200...299:
                return response.body
            case 429:
                // Refused before anything was created: safe to send again, after Retry-After.
                if attempt < maxAttempts,
                    wait(attempt, retryAfter: response.header("Retry-After").flatMap { Double($0) }, deadline: deadline)
                {
                    continue
                }
                if throttledThrows { throw Throttled(description: "HTTP 429 to \(method) \(path) after \(attempt) attempts") }
                throw DependencyUnavailable(.provider, detail: "HTTP 429 after \(attempt) attempts")
            case 500...599:
                if idempotent, attempt < maxAttempts, wait(attempt, retryAfter: nil, deadline: deadline) { continue }
                if !idempotent { throw Uncertain(description: "HTTP \(response.status) to \(method) \(path)") }
                throw DependencyUnavailable(.provider, detail: "HTTP \(response.status) after \(attempt) attempts")
            default:
                throw DependencyUnavailable(
                    .provider, detail: "HTTP \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
            }
        }
    }

    /// Retries of one call stop once this much time has gone (the request that waits has its own limit).
    static let retryBudgetSeconds = 20
    /// The longest Retry-After honoured.
    static let maxRetryAfterSeconds = 30.0

    /// Sleeps before the next attempt (Retry-After when given, up to 30 s; else exponential with jitter)
    /// and says yes, or says no without sleeping when that would pass the deadline.
    func wait(_ attempt: Int, retryAfter: Double?, deadline: Int64) -> Bool {
        let given = retryAfter.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }  // "-1" or "nan" is no advice
        let seconds = min(
            given ?? (0.25 * Double(1 << attempt)) * (0.5 + Double(Random.uniform(1000)) / 1000),
            Self.maxRetryAfterSeconds)
        guard Monotonic.now() + Int64(seconds * 1_000_000_000) < deadline else { return false }
        usleep(UInt32(seconds * 1_000_000))
        return true
    }

    static func escape(_ id: String) -> String {
        String(
            id.unicodeScalars.filter { $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }.map(
                Character.init))
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
