import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitHTTP
@testable import SharedKitMedia

/// The provider list (PROVIDERS) and what is asked of OpenAI.
@Suite struct ProviderTests {
    @Test func providerListsAreRead() throws {
        func order(_ env: [String: String]) throws -> [ProviderName] {
            var environment = [
                "DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x", "PUBLIC_BASE_URL": "https://atelier.example",
                "APP_SECRET": String(repeating: "s", count: 40),
            ]
            environment.merge(env) { $1 }
            return try Providers(Config(environment: environment)).order
        }
        #expect(try order([:]) == [.local])
        #expect(try order(["REPLICATE_API_TOKEN": "r"]) == [.replicate])
        #expect(try order(["REPLICATE_API_TOKEN": "r", "OPENAI_API_KEY": "k"]) == [.replicate, .openai])
        #expect(try order(["REPLICATE_API_TOKEN": "r", "OPENAI_API_KEY": "k", "PROVIDERS": "openai, replicate"]) == [.openai, .replicate])
        #expect(try order(["OPENAI_API_KEY": "k", "PROVIDERS": "replicate,openai,local"]) == [.openai, .local])
        #expect(throws: Config.Invalid.self) { try order(["PROVIDERS": "replicate,midjourney"]) }
        #expect(throws: Config.Invalid.self) { try order(["PROVIDERS": "local,openai", "OPENAI_API_KEY": "k"]) }
        #expect(throws: Config.Invalid.self) { try order(["PROVIDERS": "openai"]) }
        #expect(!ProviderName.openai.can(.upscale) && !ProviderName.openai.can(.video) && ProviderName.openai.can(.inpaint))
    }

    @Test func openAISizesFollowEachModel() {
        #expect(OpenAIClient.size(model: "gpt-image-1", width: 1344, height: 768) == "1536x1024")
        #expect(OpenAIClient.size(model: "gpt-image-1", width: 768, height: 1344) == "1024x1536")
        #expect(OpenAIClient.size(model: "gpt-image-1", width: 1024, height: 1024) == "1024x1024")
        #expect(OpenAIClient.size(model: "dall-e-3", width: 1536, height: 640) == "1792x1024")
        #expect(OpenAIClient.size(model: "dall-e-2", width: 1536, height: 640) == "1024x1024")
        #expect(!OpenAIClient.asksForBase64("gpt-image-1") && OpenAIClient.asksForBase64("dall-e-3"))
    }

    @Test func openAIMasksAreTransparentWhereToPaint() throws {
        let png = try Imaging.encodeTransparencyMask(width: 4, height: 1, values: [255, 0, 200, 10])
        // PNG colour type 4: grey with alpha.
        #expect(png[25] == 4)
    }
}
