import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitRuntime

/// `POST /api/v1/prompts/enhance`: a richer prompt to show the user before they use it. It costs no
/// image quota.
enum Enhance {
    struct Input: Decodable {
        let prompt: String
        let style: String?
    }

    struct Suggestion: Encodable {
        let prompt: String
        let original: String
    }

    static func suggest(_ request: Request, _ context: Context) throws -> Response {
        _ = try context.authorize(request, budget: \.enhance)
        let input = try request.decode(Input.self)
        let prompt = try Catalog.prompt(input.prompt, what: "prompt to enhance")
        let style = try Catalog.style(input.style)
        return try .json(Suggestion(prompt: try suggestion(for: prompt, style: style, context), original: prompt))
    }

    /// The prompt alone from a chat model's answer: a preamble line ("Here is a more vivid prompt:",
    /// "Sure! …:"), a "Prompt:" label and surrounding quotes go, as do notes after a blank line.
    static func promptOnly(_ answer: String) -> String {
        var lines = answer.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingWhitespace().description }
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        if lines.count > 1, let first = lines.first, first.hasSuffix(":") { lines.removeFirst() }
        while let first = lines.first, first.isEmpty { lines.removeFirst() }
        if let blank = lines.firstIndex(of: "") { lines = Array(lines[..<blank]) }
        var text = lines.joined(separator: " ").trimmingWhitespace().description
        for label in ["Prompt:", "prompt:", "Rewritten prompt:", "Enhanced prompt:"] where text.hasPrefix(label) {
            text = text.dropFirst(label.count).trimmingWhitespace().description
        }
        for (open, close) in [("\"", "\""), ("“", "”"), ("'", "'")] where text.count > 2 && text.hasPrefix(open) && text.hasSuffix(close) {
            text = String(text.dropFirst().dropLast()).trimmingWhitespace().description
        }
        return text
    }

    /// A language model of the configured providers (in their order, cooling ones last); the embedded
    /// enhancer when none is configured, and whenever every model fails or answers with nothing usable.
    static func suggestion(for prompt: String, style: Catalog.Style, _ context: Context) throws -> String {
        let instruction = """
            Rewrite this image-generation prompt to be vivid and specific: keep its subject, add concrete detail, lighting, \
            composition\(style.promptTerms.isEmpty ? "" : " and this style: \(style.promptTerms)"). Answer with the prompt only, \
            one line, at most 80 words.
            """
        let providers = try Providers(context.config)
        for provider in providers.chain(for: .image, redis: context.redis, logger: context.logger) {
            do {
                let answer: String
                switch provider {
                case .local:
                    continue
                case .replicate:
                    guard let client = ReplicateClient(context.config) else { continue }
                    let prediction = try client.run(
                        model: client.models.enhance,
                        input: [
                            "prompt": .string(instruction + "\n\nPrompt: \(prompt)"), "max_tokens": .number(200),
                            "temperature": .number(0.6),
                        ], waitSeconds: 10)
                    guard prediction.status == "succeeded" else {
                        context.logger.notice("enhancer model gave no answer", metadata: ["status": .string(prediction.status)])
                        continue
                    }
                    answer = ReplicateClient.outputText(prediction.output)
                case .openai:
                    guard let client = OpenAIClient(context.config) else { continue }
                    answer = try client.chat(
                        model: client.models.enhance, instruction: instruction, message: "Prompt: \(prompt)", maxTokens: 200,
                        temperature: 0.6)
                }
                let text = promptOnly(answer)
                if !text.isEmpty, text.count <= 2000 { return text }
                context.logger.notice("enhancer model gave no usable answer", metadata: ["provider": .string(provider.rawValue)])
            } catch {
                context.logger.notice(
                    "enhancer model unavailable", metadata: ["provider": .string(provider.rawValue), "error": .string("\(error)")])
            }
        }
        return PromptEnhancer.enhance(prompt, style: style)
    }
}
