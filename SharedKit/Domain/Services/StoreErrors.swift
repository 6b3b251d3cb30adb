public import SharedKitRuntime
public import SharedKitStores

/// The stores' own errors that a client is meant to see, in the API's terms (the stores know no HTTP).
extension UnstorableText: HTTPErrorConvertible {
    public var httpError: HTTPError {
        HTTPError(.badRequest, code: "invalid_text", message: "Text cannot contain NUL characters.")
    }
}
