import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// An email with a plain-text and an HTML part, rendered as an RFC 5322 message.
public struct MailMessage: Sendable {
    public let to: String
    public let subject: String
    public let text: String
    public let html: String

    public init(to: String, subject: String, text: String, html: String) {
        self.to = to
        self.subject = subject
        self.text = text
        self.html = html
    }

    /// The message as sent: headers, then a multipart/alternative body, CRLF line ends.
    public func rendered(from: String, messageIDDomain: String) -> [UInt8] {
        let boundary = "atelier-" + Random.hex(byteCount: 12)
        let lines = [
            "From: \(Self.headerSafe(from))",
            "To: \(Self.headerSafe(to))",
            "Subject: \(Self.encodedWord(subject))",
            "Date: \(Self.rfc5322Date(WallClock.nowSeconds()))",
            "Message-ID: <\(Random.hex(byteCount: 16))@\(messageIDDomain)>",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative; boundary=\"\(boundary)\"",
            "",
            "--\(boundary)",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            Self.crlf(text),
            "--\(boundary)",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            Self.crlf(html),
            "--\(boundary)--",
            "",
        ]
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    /// The bare address inside `Name <addr>`.
    public static func address(_ mailbox: String) -> String {
        if let open = mailbox.lastIndex(of: "<"), let close = mailbox.lastIndex(of: ">"), open < close {
            return String(mailbox[mailbox.index(after: open)..<close])
        }
        return mailbox.trimmingWhitespace().description
    }

    static func headerSafe(_ value: String) -> String {
        String(value.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init))
    }

    /// RFC 2047 for non-ASCII subjects.
    static func encodedWord(_ value: String) -> String {
        let safe = headerSafe(value)
        if safe.utf8.allSatisfy({ $0 < 0x80 }) { return safe }
        return "=?utf-8?B?\(Encoding.base64(Array(safe.utf8)))?="
    }

    /// Every line end as CRLF ("\r\n" is a single Character in Swift, so normalise it first).
    static func crlf(_ text: String) -> String {
        text.replacing("\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n")
    }

    static func rfc5322Date(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func pad(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(days[Int(parts.tm_wday)]), \(parts.tm_mday) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)) +0000"
    }
}

/// Sends mail. Delivery failures are thrown; callers decide whether the request still succeeds.
public protocol Mailer {
    func send(_ message: MailMessage) throws
}

/// With no SMTP server configured: each message becomes an `.eml` file in `<RUN_DIR>/outbox/`.
public struct OutboxMailer: Mailer {
    public let folder: String
    public let from: String

    public init(folder: String, from: String) {
        self.folder = folder
        self.from = from
    }

    public func send(_ message: MailMessage) throws {
        mkdir(folder, 0o700)
        let name = "\(folder)/\(WallClock.nowSeconds())-\(Random.hex(byteCount: 6)).eml"
        let bytes = message.rendered(from: from, messageIDDomain: "atelier.local")
        let fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw MailFailure(description: "cannot write \(name): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw MailFailure(description: "short write to \(name)") }
    }
}

public struct MailFailure: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}
