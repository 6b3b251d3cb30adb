public import SharedKitCore
import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Completion webhooks for API clients: a generation asked with `webhook_url` is POSTed to that URL when
/// it ends (succeeded, failed or canceled; a failed one says whether it was refunded), signed the
/// Standard Webhooks way with the user's signing secret. The messages are queued by the database in the
/// same transaction that ends the generation (Migrations/0013) and delivered by `WebhookDelivery`.
public enum CompletionWebhooks {
    /// The URL a request names, checked before anything is charged: `https` (plain `http` only to
    /// loopback, and only where `WEBHOOK_ALLOW_LOOPBACK` allows it, as the test stack does), a host, no
    /// credentials or fragment, at most 2048 characters, and not an address inside our network. Names
    /// are resolved again at each delivery, where the address actually connected to is checked.
    public static func checkURL(_ raw: String, allowLoopback: Bool) throws -> String {
        func refuse(_ why: String) -> HTTPError {
            HTTPError(.badRequest, code: "invalid_webhook_url", message: "webhook_url \(why).")
        }
        let url = raw.trimmingWhitespace().description
        guard url.utf8.count <= 2048 else { throw refuse("is longer than 2048 characters") }
        guard let target = WebhookTarget(url) else {
            throw refuse("must be an absolute https:// URL with a host, without user name, password or fragment")
        }
        if target.scheme == "http" {
            guard allowLoopback, target.isLoopbackName || AddressPolicy.literal(target.host).map(AddressPolicy.isLoopback) == true else {
                throw refuse("must use https")
            }
        }
        if let address = AddressPolicy.literal(target.host) {
            guard AddressPolicy.allows(address, loopback: allowLoopback) else {
                throw refuse("points inside a private network (\(target.host)); use a public address")
            }
        } else if !target.host.contains(".") && !(allowLoopback && target.isLoopbackName) {
            throw refuse("must name a public host by its full name (\(target.host) is a name only a local network knows)")
        } else if AddressPolicy.looksNumeric(target.host) {
            throw refuse("names an address in a form other than a.b.c.d or IPv6 (\(target.host))")
        } else if target.isLoopbackName && !allowLoopback || target.isInternalName {
            throw refuse("points inside a private network (\(target.host)); use a public address")
        }
        return url
    }

    /// A request's `webhook_url`, checked under this deployment's settings; nil when none was given.
    public static func url(_ raw: String?, _ config: Config) throws -> String? {
        guard let raw, !raw.isEmpty else { return nil }
        return try checkURL(raw, allowLoopback: config.string("WEBHOOK_ALLOW_LOOPBACK") == "1")
    }

    /// The user's signing secret (`whsec_` and 32 bytes, base64): derived from APP_SECRET, the user and
    /// the secret's version, so it is never stored; rotating bumps the version.
    public static func secret(userID: UserID, version: Int, appSecret: String) -> String {
        "whsec_"
            + Encoding.base64(Digest.hmacSHA256(key: appSecret, message: "completion-webhook-secret|\(userID)|\(version)"))
    }

    /// How long after a rotation deliveries are still signed with the previous secret as well.
    public static let previousSecretSeconds = 24 * 3600
}

/// The parts of a webhook URL that matter for where it connects.
public struct WebhookTarget: Sendable {
    public let scheme: String
    /// The host as written (an IPv6 literal without its brackets), lowercased.
    public let host: String
    public let port: Int

    public init?(_ url: String) {
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
        let scheme = url[..<colon].lowercased()
        guard scheme == "https" || scheme == "http" else { return nil }
        let rest = url[url.index(colon, offsetBy: 3)...]
        guard !rest.contains("#"), !rest.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f || $0 == "\\" }) else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else {
            let pieces = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { return nil }
            host = pieces[0]
            portText = pieces.count == 2 ? pieces[1] : nil
        }
        // A trailing dot is refused rather than dropped: the name checked and the name curl is given must
        // be the same text.
        guard !host.isEmpty, !host.hasSuffix("."), host.utf8.count <= 253 else { return nil }
        var port = scheme == "https" ? 443 : 80
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { return nil }
            port = value
        }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
    }

    public var isLoopbackName: Bool { host == "localhost" || host.hasSuffix(".localhost") }

    /// Names that only mean something inside a network (mDNS, cloud-internal DNS).
    public var isInternalName: Bool {
        ["local", "internal", "localdomain", "lan", "intranet", "home.arpa"].contains { host == $0 || host.hasSuffix("." + $0) }
            || host == "metadata.google.internal"
    }
}

/// Which IP addresses a webhook may connect to: public unicast only. Loopback, private (RFC 1918, unique
/// local), link-local (where cloud metadata lives: 169.254.169.254, fe80::/10, fd00:ec2::254 is unique
/// local), carrier-grade NAT, "this network", multicast, reserved and documentation ranges are refused,
/// as are the IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo), judged
/// by the address they carry.
public enum AddressPolicy {
    /// An address: 4 bytes (IPv4) or 16 (IPv6).
    public typealias Address = [UInt8]

    /// The address a host names literally (dotted IPv4 in its strict four-part form, or IPv6), if any.
    public static func literal(_ host: String) -> Address? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// Hosts written as numbers other than dotted quads (`2130706433`, `0x7f.1`, `017700000001`) are not
    /// literals to inet_pton but are to some resolvers: they must never pass as names.
    public static func looksNumeric(_ host: String) -> Bool {
        !host.isEmpty && host.allSatisfy { $0.isHexDigit || $0 == "." || $0 == "x" || $0 == "X" } && host.first!.isNumber
    }

    public static func allows(_ address: Address, loopback: Bool) -> Bool {
        if loopback && isLoopback(address) { return true }
        return isPublic(address)
    }

    public static func isLoopback(_ address: Address) -> Bool {
        if address.count == 4 { return address[0] == 127 }
        if address == [UInt8](repeating: 0, count: 15) + [1] { return true }
        if let v4 = embeddedIPv4(address) { return v4[0] == 127 }
        return false
    }

    public static func isPublic(_ address: Address) -> Bool {
        switch address.count {
        case 4: return isPublicV4(address)
        case 16: return isPublicV6(address)
        default: return false
        }
    }

    static func isPublicV4(_ a: Address) -> Bool {
        let (b0, b1, b2) = (a[0], a[1], a[2])
        switch b0 {
        case 0, 10, 127: return false  // "this network", private, loopback
        case 100 where (64...127).contains(b1): return false  // carrier-grade NAT
        case 169 where b1 == 254: return false  // link-local (cloud metadata)
        case 172 where (16...31).contains(b1): return false  // private
        case 192 where b1 == 168: return false  // private
        case 192 where b1 == 0 && (b2 == 0 || b2 == 2): return false  // IETF protocol assignments, TEST-NET-1
        case 192 where b1 == 88 && b2 == 99: return false  // 6to4 relay anycast
        case 198 where b1 == 18 || b1 == 19: return false  // benchmarking
        case 198 where b1 == 51 && b2 == 100: return false  // TEST-NET-2
        case 203 where b1 == 0 && b2 == 113: return false  // TEST-NET-3
        case 224...255: return false  // multicast, reserved, broadcast
        default: return true
        }
    }

    static func isPublicV6(_ a: Address) -> Bool {
        if let v4 = embeddedIPv4(a) { return isPublicV4(v4) }
        if a.allSatisfy({ $0 == 0 }) { return false }  // unspecified
        if a == [UInt8](repeating: 0, count: 15) + [1] { return false }  // loopback
        if a[0] == 0xff { return false }  // multicast
        if a[0] & 0xfe == 0xfc { return false }  // unique local fc00::/7 (fd00:ec2::254 among them)
        if a[0] == 0xfe && a[1] & 0xc0 == 0x80 { return false }  // link-local fe80::/10
        if a[0] == 0xfe && a[1] & 0xc0 == 0xc0 { return false }  // site-local fec0::/10 (deprecated)
        if a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8 { return false }  // documentation 2001:db8::/32
        if a[0] == 0x01 && a[1] == 0x00 && a[2...7].allSatisfy({ $0 == 0 }) { return false }  // discard-only 100::/64
        if a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00 {
            // Teredo 2001::/32: the client's IPv4 is the last four bytes, inverted.
            return isPublicV4(a[12...15].map { ~$0 })
        }
        // Only global unicast (2000::/3) is routable on the Internet.
        return a[0] & 0xe0 == 0x20
    }

    /// The IPv4 address inside an IPv6 one of the forms that carry one: mapped (::ffff:a.b.c.d),
    /// compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and 64:ff9b:1::/48) and 6to4 (2002:abcd:efgh::/16).
    static func embeddedIPv4(_ a: Address) -> Address? {
        guard a.count == 16 else { return nil }
        let prefix = a[0..<10]
        if prefix.allSatisfy({ $0 == 0 }) && a[10] == 0xff && a[11] == 0xff { return Array(a[12...15]) }
        if a[0..<12].allSatisfy({ $0 == 0 }) && !(a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] <= 1) { return Array(a[12...15]) }
        if a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && (a[4..<12].allSatisfy { $0 == 0 } || (a[4] == 0 && a[5] == 1)) {
            return Array(a[12...15])
        }
        if a[0] == 0x20 && a[1] == 0x02 { return Array(a[2...5]) }
        return nil
    }

    /// Text of an address, as curl's `--resolve` takes it (IPv6 in brackets).
    public static func text(_ address: Address) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = address.count == 4 ? AF_INET : AF_INET6
        _ = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return address.count == 4 ? text : "[\(text)]"
    }

    /// Every address a name resolves to (TCP), or nil when it does not resolve.
    public static func resolve(_ host: String) -> [Address]? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(first) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if let sockaddr = info.pointee.ai_addr {
                if info.pointee.ai_family == AF_INET {
                    sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                        var address = $0.pointee.sin_addr
                        addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                    }
                } else if info.pointee.ai_family == AF_INET6 {
                    sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        var address = $0.pointee.sin6_addr
                        addresses.append(withUnsafeBytes(of: &address) { Array($0) })
                    }
                }
            }
            cursor = info.pointee.ai_next
        }
        return addresses.isEmpty ? nil : addresses
    }
}
