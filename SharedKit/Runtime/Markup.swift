/// Text placed inside HTML or XML (element content or a quoted attribute value).
public enum Markup {
    /// `&`, `<`, `>`, `"` and `'` as character references: safe in content and in either kind of quoted
    /// attribute, in HTML and in XML alike.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
