import SharedKitCore
import SharedKitRuntime

/// The choices a generation request offers: styles, colours and aspect ratios, each with what it adds
/// to a provider's prompt and the pixel size it maps to.
public enum Catalog {
    public struct Style: Sendable {
        public let id: String
        public let promptTerms: String
    }

    public static let styles: [Style] = [
        Style(id: "none", promptTerms: ""),
        Style(id: "photographic", promptTerms: "photograph, natural light, shallow depth of field, high detail"),
        Style(id: "cinematic", promptTerms: "cinematic still, dramatic lighting, anamorphic, film grain"),
        Style(id: "digital-art", promptTerms: "digital art, crisp detail, vivid"),
        Style(id: "anime", promptTerms: "anime illustration, clean line art, cel shading"),
        Style(id: "watercolor", promptTerms: "watercolor painting, soft washes, paper texture"),
        Style(id: "oil-painting", promptTerms: "oil painting, visible brush strokes, rich texture"),
        Style(id: "pixel-art", promptTerms: "pixel art, 16-bit, limited palette"),
        Style(id: "sketch", promptTerms: "pencil sketch, graphite, cross-hatching"),
        Style(id: "3d-render", promptTerms: "3D render, global illumination, soft shadows"),
    ]

    public struct Colour: Sendable {
        public let id: String
        public let promptTerms: String
        /// Palette for the local renderer: RGB triples from dark to light.
        public let palette: [(UInt8, UInt8, UInt8)]
    }

    public static let colours: [Colour] = [
        Colour(id: "auto", promptTerms: "", palette: []),
        Colour(
            id: "warm", promptTerms: "warm colour palette, amber and crimson tones",
            palette: [(58, 12, 18), (170, 48, 32), (236, 140, 52), (252, 222, 150)]),
        Colour(
            id: "cool", promptTerms: "cool colour palette, blue and teal tones",
            palette: [(8, 22, 52), (24, 82, 140), (60, 170, 190), (200, 236, 240)]),
        Colour(
            id: "pastel", promptTerms: "soft pastel colours",
            palette: [(150, 140, 190), (236, 170, 190), (250, 214, 180), (216, 242, 226)]),
        Colour(
            id: "vibrant", promptTerms: "vibrant saturated colours",
            palette: [(90, 0, 160), (230, 0, 120), (255, 160, 0), (0, 220, 200)]),
        Colour(
            id: "monochrome", promptTerms: "black and white, monochrome",
            palette: [(12, 12, 12), (90, 90, 90), (170, 170, 170), (240, 240, 240)]),
        Colour(
            id: "earthy", promptTerms: "earthy natural colours, ochre and olive",
            palette: [(40, 30, 20), (110, 84, 46), (150, 140, 70), (214, 196, 150)]),
        Colour(
            id: "neon", promptTerms: "neon glow on dark background",
            palette: [(6, 4, 20), (60, 0, 120), (0, 240, 255), (255, 40, 200)]),
    ]

    public struct AspectRatio: Sendable {
        public let id: String
        public let width: Int
        public let height: Int
    }

    /// Sizes near one megapixel, multiples of 64 (flux-schnell's own aspect ratios).
    public static let aspectRatios: [AspectRatio] = [
        AspectRatio(id: "1:1", width: 1024, height: 1024),
        AspectRatio(id: "16:9", width: 1344, height: 768),
        AspectRatio(id: "9:16", width: 768, height: 1344),
        AspectRatio(id: "4:3", width: 1152, height: 896),
        AspectRatio(id: "3:4", width: 896, height: 1152),
        AspectRatio(id: "3:2", width: 1216, height: 832),
        AspectRatio(id: "2:3", width: 832, height: 1216),
        AspectRatio(id: "21:9", width: 1536, height: 640),
    ]

    public static let maxPromptCharacters = 2000

    /// A prompt of 1 to 2000 characters, trimmed.
    public static func prompt(_ raw: String, what: String) throws -> String {
        let prompt = raw.trimmingWhitespace().description
        guard !prompt.isEmpty, prompt.count <= maxPromptCharacters else {
            throw HTTPError(
                .badRequest, code: "invalid_prompt",
                message: "Describe the \(what) in 1 to \(maxPromptCharacters) characters.")
        }
        return prompt
    }

    public static func style(_ id: String?) throws -> Style {
        let key = (id ?? "none").lowercased()
        guard let style = styles.first(where: { $0.id == key }) else {
            throw HTTPError(
                .badRequest, code: "invalid_style",
                message: "Unknown style '\(key)'; choose one of \(styles.map(\.id).joined(separator: ", ")).")
        }
        return style
    }

    public static func colour(_ id: String?) throws -> Colour {
        let key = (id ?? "auto").lowercased()
        guard let colour = colours.first(where: { $0.id == key }) else {
            throw HTTPError(
                .badRequest, code: "invalid_colour",
                message: "Unknown colour '\(key)'; choose one of \(colours.map(\.id).joined(separator: ", ")).")
        }
        return colour
    }

    public static func aspectRatio(_ id: String?) throws -> AspectRatio {
        let key = id ?? "1:1"
        guard let ratio = aspectRatios.first(where: { $0.id == key }) else {
            throw HTTPError(
                .badRequest, code: "invalid_aspect_ratio",
                message: "Unknown aspect ratio '\(key)'; choose one of \(aspectRatios.map(\.id).joined(separator: ", ")).")
        }
        return ratio
    }

    /// The prompt a provider receives: the user's words, then the style's and the colour's terms.
    public static func providerPrompt(_ prompt: String, style: Style, colour: Colour) -> String {
        [prompt, style.promptTerms, colour.promptTerms].filter { !$0.isEmpty }.joined(separator: ", ")
    }
}
