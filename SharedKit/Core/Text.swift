extension StringProtocol {
    /// Without leading and trailing whitespace.
    public func trimmingWhitespace() -> Substring {
        let s = Substring(self)
        guard let start = s.firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let end = s.lastIndex(where: { !$0.isWhitespace })!
        return s[start...end]
    }
}
