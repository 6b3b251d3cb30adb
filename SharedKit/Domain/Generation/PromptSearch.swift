import SharedKitRuntime
public import SharedKitStores

/// `q=` on the image and video listings: the words of a prompt, each matched as a prefix of a word of the
/// stored prompts (so "light" finds "lighthouse" while typing), all of them required. Only letters and
/// digits make words; everything else separates them, so no query syntax reaches PostgreSQL.
public enum PromptSearch {
    public static let maxLength = 200
    public static let maxWords = 8

    /// ` AND prompt_search @@ …` for the request's `q`, or an empty fragment without one.
    public static func filter(_ q: String?) throws -> SQLQuery {
        guard let q, !q.isEmpty else { return "" }
        guard q.count <= maxLength else {
            throw HTTPError(.badRequest, code: "invalid_query", message: "q must be at most \(maxLength) characters.")
        }
        let words = words(q)
        guard !words.isEmpty else {
            throw HTTPError(.badRequest, code: "invalid_query", message: "q must contain a letter or a digit.")
        }
        let query = words.prefix(maxWords).map { "\($0):*" }.joined(separator: " & ")
        return " AND prompt_search @@ to_tsquery('simple', \(query))"
    }

    /// The lower-cased runs of letters and digits.
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                current.append(character)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }
}
