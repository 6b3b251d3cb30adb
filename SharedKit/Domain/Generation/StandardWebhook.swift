import SharedKitCore

/// Standard Webhooks signatures (Replicate's scheme): base64 HMAC-SHA256 of `id.timestamp.body` keyed
/// with the base64 secret after `whsec_`; any of the space-separated `v1,` signatures may match; the
/// timestamp must be within five minutes of now.
public struct StandardWebhook: Sendable {
    public static let toleranceSeconds: Int64 = 300

    let key: [UInt8]

    public init?(secret: String) {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let key = Encoding.fromBase64(encoded), !key.isEmpty else { return nil }
        self.key = key
    }

    public func signature(id: String, timestamp: String, body: [UInt8]) -> String {
        "v1," + Encoding.base64(Digest.hmacSHA256(key: key, message: Array("\(id).\(timestamp).".utf8) + body))
    }

    public enum Failure: Error, Equatable { case missingHeaders, badTimestamp, staleTimestamp, noMatchingSignature }

    /// Throws unless one signature matches and the timestamp is fresh. Compares in constant time.
    public func verify(id: String?, timestamp: String?, signatures: String?, body: [UInt8], now: Int64) throws {
        guard let id, !id.isEmpty, let timestamp, let signatures, !signatures.isEmpty else { throw Failure.missingHeaders }
        guard let seconds = Int64(timestamp) else { throw Failure.badTimestamp }
        // The header is the sender's: the difference must not overflow (Int64.min would trap in abs).
        let (difference, overflow) = now.subtractingReportingOverflow(seconds)
        guard !overflow, difference.magnitude <= UInt64(Self.toleranceSeconds) else { throw Failure.staleTimestamp }
        let expected = Array(signature(id: id, timestamp: timestamp, body: body).utf8)
        var matched = false
        for candidate in signatures.split(separator: " ") where candidate.hasPrefix("v1,") {
            if Digest.constantTimeEquals(Array(candidate.utf8), expected) { matched = true }
        }
        guard matched else { throw Failure.noMatchingSignature }
    }
}
