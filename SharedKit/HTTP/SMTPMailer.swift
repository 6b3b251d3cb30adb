import CCurl
public import SharedKit
public import SharedKitCore

/// SMTP through libcurl. `smtps://` uses implicit TLS; `smtp://` upgrades with STARTTLS (RFC 3207), and
/// whether it must is `tls`: with credentials in the URL TLS is required, so a network that strips
/// STARTTLS from the server's answer gets a failed delivery and never sees the password; without
/// credentials STARTTLS is used when offered. `SMTP_TLS=required` always requires it, `SMTP_TLS=none`
/// (a relay on the same host, say) never starts it. The server's certificate is checked against the
/// system's CAs or `SMTP_CA_FILE`. Credentials go to curl separately, so URLs in errors carry none.
public struct SMTPMailer: Mailer {
    public enum TLS: String, Sendable {
        /// Required when the URL carries credentials, opportunistic otherwise.
        case auto
        case required
        /// Plain text throughout, credentials included: only for a relay that cannot be reached by others.
        case none
    }

    let server: String
    let user: String?
    let password: String?
    let from: String
    let timeoutMs: Int
    let tls: TLS
    let caFile: String?

    public init?(url: String, from: String, tls: TLS = .auto, caFile: String? = nil, timeoutMs: Int = 10_000) {
        guard url.hasPrefix("smtp://") || url.hasPrefix("smtps://") else { return nil }
        let scheme = url.hasPrefix("smtps://") ? "smtps://" : "smtp://"
        var rest = Substring(url.dropFirst(scheme.count))
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = PercentDecoding.decode(credentials[..<colon])
                password = PercentDecoding.decode(credentials[credentials.index(after: colon)...])
            } else {
                user = PercentDecoding.decode(credentials)
            }
        }
        self.server = scheme + rest
        self.user = user
        self.password = password
        self.from = from
        self.timeoutMs = timeoutMs
        self.tls = tls
        self.caFile = caFile
    }

    /// For `atelier doctor`: connects, upgrades to TLS as `tls` requires, authenticates and says NOOP;
    /// no mail is sent. Throws what went wrong.
    public func check() throws {
        try session(failure: "SMTP check of \(server) failed") { handle in
            atl_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "NOOP")
            atl_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
            return curl_easy_perform(handle)
        }
    }

    /// One SMTP exchange: the server, TLS as `tls` requires, the CA file, timeouts and credentials are
    /// set, then `perform` adds what this exchange is and runs it. A failure names curl's error and the
    /// server's last reply code.
    func session(failure: String, _ perform: (UnsafeMutableRawPointer) -> CURLcode) throws {
        guard let handle = curl_easy_init() else { throw MailFailure(description: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        atl_curl_setopt_string(handle, CURLOPT_URL, server)
        atl_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        atl_curl_setopt_long(handle, CURLOPT_USE_SSL, Int(useSSL.rawValue))
        if let caFile { atl_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        atl_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, min(timeoutMs, 5000))
        atl_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
        if let user { atl_curl_setopt_string(handle, CURLOPT_USERNAME, user) }
        if let password { atl_curl_setopt_string(handle, CURLOPT_PASSWORD, password) }
        let code = perform(handle)
        guard code == CURLE_OK else {
            var status = 0
            atl_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
            throw MailFailure(description: "\(failure): \(String(cString: curl_easy_strerror(code))) (reply \(status))")
        }
    }

    /// What curl is told: `CURLUSESSL_ALL` fails the delivery unless the connection is encrypted.
    var useSSL: curl_usessl {
        switch tls {
        case .required: return CURLUSESSL_ALL
        case .none: return CURLUSESSL_NONE
        case .auto: return user != nil || password != nil ? CURLUSESSL_ALL : CURLUSESSL_TRY
        }
    }

    public func send(_ message: MailMessage) throws {
        let domain = MailMessage.address(from).split(separator: "@").last.map(String.init) ?? "atelier.local"
        let source = UploadSource(message.rendered(from: from, messageIDDomain: domain))
        let sourcePointer = Unmanaged.passUnretained(source).toOpaque()
        let recipients = curl_slist_append(nil, "<\(MailMessage.address(message.to))>")
        defer { curl_slist_free_all(recipients) }
        // curl reads the message through `sourcePointer` during the session: `source` lives until it ends.
        try withExtendedLifetime(source) {
            try session(failure: "SMTP delivery via \(server) failed") { handle in
                atl_curl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(MailMessage.address(from))>")
                atl_curl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients)
                atl_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
                atl_curl_setopt_read_function(handle) { buffer, size, count, user in
                    let source = Unmanaged<UploadSource>.fromOpaque(user!).takeUnretainedValue()
                    return source.read(into: buffer!, capacity: size * count)
                }
                atl_curl_setopt_pointer(handle, CURLOPT_READDATA, sourcePointer)
                return curl_easy_perform(handle)
            }
        }
    }
}

/// Feeds a message to curl's read callback.
final class UploadSource {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        let count = min(capacity, bytes.count - offset)
        if count <= 0 { return 0 }
        bytes.withUnsafeBytes { raw in
            UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + offset, byteCount: count)
        }
        offset += count
        return count
    }
}

/// The mailer configuration asks for: SMTP when `SMTP_URL` is set, else the outbox folder.
public enum Mailers {
    public static func make(_ config: Config) -> any Mailer {
        smtp(config) ?? OutboxMailer(folder: "\(config.runDir)/outbox", from: from(config))
    }

    /// The SMTP mailer `SMTP_URL`, `SMTP_TLS` and `SMTP_CA_FILE` describe, or nil without `SMTP_URL`.
    public static func smtp(_ config: Config) -> SMTPMailer? {
        guard let url = config.string("SMTP_URL") else { return nil }
        return SMTPMailer(
            url: url, from: from(config), tls: config.string("SMTP_TLS").flatMap(SMTPMailer.TLS.init) ?? .auto,
            caFile: config.string("SMTP_CA_FILE"))
    }

    static func from(_ config: Config) -> String { config.string("MAIL_FROM") ?? "Atelier <no-reply@atelier.local>" }
}
