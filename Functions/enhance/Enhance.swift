import SharedKit

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
        _ = try context.authenticatedUser(request)
        let input = try request.decode(Input.self)
        let prompt = input.prompt.trimmingWhitespace().description
        guard !prompt.isEmpty, prompt.count <= 2000 else {
            throw HTTPError(.badRequest, code: "invalid_prompt", message: "Give a prompt of 1 to 2000 characters to enhance.")
        }
        let style = try Catalog.style(input.style)
        return try .json(Suggestion(prompt: PromptEnhancer.enhance(prompt, style: style), original: prompt))
    }
}
