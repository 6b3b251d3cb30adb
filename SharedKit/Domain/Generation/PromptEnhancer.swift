import SharedKitCore

/// The embedded prompt enhancer: adds what a good image prompt names and a short one usually lacks
/// (subject detail, lighting, composition, style terms), chosen by what the prompt is about. The same
/// prompt and style always give the same suggestion.
public enum PromptEnhancer {
    /// Subjects come before settings: "a fox in a forest" is about the fox.
    struct Rule {
        let keywords: [String]
        let detail: String
        let lighting: String
        let composition: String
    }

    static let rules: [Rule] = [
        Rule(
            keywords: ["portrait", "face", "woman", "man", "girl", "boy", "person", "child", "people"],
            detail: "expressive eyes, natural skin texture", lighting: "soft key light with gentle rim light",
            composition: "85mm lens, head-and-shoulders framing, blurred background"),
        Rule(
            keywords: ["cat", "dog", "bird", "fox", "horse", "animal", "owl", "wolf", "lion", "tiger"],
            detail: "fine fur texture, alert expression", lighting: "soft natural daylight",
            composition: "eye-level close-up, shallow depth of field"),
        Rule(
            keywords: ["food", "cake", "coffee", "dish", "fruit", "bread", "pizza", "tea"],
            detail: "appetising texture, fresh garnish", lighting: "diffused window light from the side",
            composition: "45-degree overhead angle, clean tabletop"),
        Rule(
            keywords: ["space", "planet", "galaxy", "star", "nebula", "moon", "astronaut", "rocket"],
            detail: "glowing nebula clouds, distant stars", lighting: "dramatic rim light from a nearby star",
            composition: "vast sense of scale, centred subject"),
        Rule(
            keywords: ["car", "robot", "machine", "ship", "train", "vehicle", "spaceship"],
            detail: "precise mechanical detail, subtle wear", lighting: "studio lighting with specular highlights",
            composition: "three-quarter view, dynamic angle"),
        Rule(
            keywords: ["mountain", "landscape", "valley", "forest", "lake", "sea", "ocean", "beach", "desert", "field", "river"],
            detail: "layered depth, atmospheric haze", lighting: "golden hour sunlight",
            composition: "wide-angle vista, rule of thirds, leading lines"),
        Rule(
            keywords: ["city", "street", "building", "skyline", "town", "architecture", "bridge"],
            detail: "intricate architectural detail, reflections on wet pavement", lighting: "blue hour with warm window light",
            composition: "low-angle perspective, strong vertical lines"),
    ]

    static let fallback = Rule(
        keywords: [], detail: "rich detail, clear focal point", lighting: "balanced natural lighting",
        composition: "thoughtful composition, rule of thirds")

    public static func enhance(_ prompt: String, style: Catalog.Style) -> String {
        let trimmed = prompt.trimmingWhitespace().description
        let words = Set(trimmed.lowercased().split { !$0.isLetter }.map(String.init))
        let rule = rules.first { rule in rule.keywords.contains { words.contains($0) || words.contains($0 + "s") } } ?? fallback
        var parts = [trimmed.hasSuffix(".") ? String(trimmed.dropLast()) : trimmed]
        let lowered = trimmed.lowercased()
        for addition in [rule.detail, rule.lighting, rule.composition, style.promptTerms]
        where !addition.isEmpty && !lowered.contains(addition.lowercased()) {
            parts.append(addition)
        }
        parts.append("high quality, highly detailed")
        return parts.joined(separator: ", ")
    }
}
