import Testing

@testable import SharedKit
@testable import SharedKitCore
@testable import SharedKitHTTP
@testable import SharedKitMedia
@testable import SharedKitRuntime

#if canImport(Glibc)
import Glibc
#endif

/// Completion webhooks: the signing scheme against the Standard Webhooks test vector, and every SSRF
/// refusal with loopback NOT allowed (production's setting; the test stack allows loopback only).
@Suite struct CompletionWebhookTests {
    @Test func signsAsTheStandardWebhooksVectorSays() throws {
        // standard-webhooks: libraries/python/tests/test_webhooks.py (test_sign_function)
        let signer = try #require(StandardWebhook(secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        #expect(
            signer.signature(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", body: Array(#"{"test": 2432232314}"#.utf8))
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func secretsAreStablePerUserAndVersion() {
        let a1 = CompletionWebhooks.secret(userID: "5D3C1A2B-0000-4000-8000-000000000001", version: 1, appSecret: "s")
        #expect(a1 == CompletionWebhooks.secret(userID: "5d3c1a2b-0000-4000-8000-000000000001", version: 1, appSecret: "s"))
        #expect(a1 != CompletionWebhooks.secret(userID: "5d3c1a2b-0000-4000-8000-000000000001", version: 2, appSecret: "s"))
        #expect(a1 != CompletionWebhooks.secret(userID: "5d3c1a2b-0000-4000-8000-000000000002", version: 1, appSecret: "s"))
        #expect(a1 != CompletionWebhooks.secret(userID: "5d3c1a2b-0000-4000-8000-000000000001", version: 1, appSecret: "t"))
        #expect(a1.hasPrefix("whsec_") && Encoding.fromBase64(String(a1.dropFirst(6)))?.count == 32)
    }

    static let refused = [
        "http://example.com/hook",  // plain http
        "http://127.0.0.1:8080/hook",
        "https://127.0.0.1/hook",
        "https://127.1.2.3/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://172.31.255.255/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://255.255.255.255/hook",
        "https://192.0.2.10/hook",
        "https://198.18.0.1/hook",
        "https://[::]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[::10.0.0.1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",
        "https://[64:ff9b:1::a00:1]/hook",
        "https://[2002:a9fe:a9fe::1]/hook",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  // Teredo of 192.0.2.45
        "https://[fd00:ec2::254]/hook",
        "https://[fc00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[fec0::1]/hook",
        "https://[ff02::1]/hook",
        "https://[2001:db8::1]/hook",
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0x7f.1/hook",
        "https://017700000001/hook",
        "https://127.1/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/hook",
        "https://router.lan/hook",
        "https://intranet/hook",  // a single label: a name only a local network (or search domain) knows
        "https://redis/hook",
        "https://example.com./hook",  // a trailing dot: the name checked and the name connected to must be one
        "https://user:pass@example.com/hook",
        "https://@example.com/hook",
        "https://example.com/hook#x",
        "https://exa mple.com/hook",
        "https://example.com\\@10.0.0.1/hook",
        "https:///hook",
        "https://example.com:0/hook",
        "https://example.com:99999/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "example.com/hook",
        "",
    ]

    @Test(arguments: refused)
    func refusesAddressesInsideTheNetwork(url: String) {
        #expect(throws: HTTPError.self) { try CompletionWebhooks.checkURL(url, allowLoopback: false) }
    }

    @Test(arguments: [
        "https://example.com/hook", "https://hooks.example.com:8443/a/b?c=d", "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook", "https://EXAMPLE.com/hook",
    ])
    func acceptsPublicHTTPS(url: String) throws {
        _ = try CompletionWebhooks.checkURL(url, allowLoopback: false)
    }

    @Test func loopbackOnlyWhereAllowedAndOnlyLoopback() throws {
        _ = try CompletionWebhooks.checkURL("http://127.0.0.1:9/hook", allowLoopback: true)
        _ = try CompletionWebhooks.checkURL("http://localhost:9/hook", allowLoopback: true)
        _ = try CompletionWebhooks.checkURL("http://[::1]:9/hook", allowLoopback: true)
        for url in ["http://example.com/hook", "https://10.0.0.1/hook", "https://169.254.169.254/", "http://192.168.0.1/"] {
            #expect(throws: HTTPError.self) { try CompletionWebhooks.checkURL(url, allowLoopback: true) }
        }
    }

    /// What a delivery checks after resolving: a name that resolves to loopback is refused.
    @Test func resolvedLoopbackIsRefused() throws {
        let addresses = try #require(AddressPolicy.resolve("localhost"))
        #expect(!addresses.isEmpty)
        for address in addresses {
            #expect(!AddressPolicy.allows(address, loopback: false))
            #expect(AddressPolicy.allows(address, loopback: true))
        }
        #expect(AddressPolicy.resolve("no-such-host.invalid") == nil)
    }

    /// The socket-level guard: whatever a name resolves to, curl opens no connection to a refused address
    /// (a listener on loopback that never answers: allowed, the transfer times out; refused, it cannot
    /// connect at all), by address and by name.
    @Test func theSocketGuardRefusesWhatThePolicyRefuses() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        #expect(bound && listen(listener, 8) == 0)
        let port = Int(UInt16(bigEndian: address.sin_port))
        func failure(_ url: String, _ guardMode: HTTPClient.AddressGuard) -> String {
            var http = HTTPClient(connectTimeoutMs: 1000, timeoutMs: 600, maxResponseBytes: 1024)
            http.noProxy = true
            http.addressGuard = guardMode
            do {
                _ = try http.send(method: "POST", url: url, body: [1])
                return "answered"
            } catch {
                return "\(error)"
            }
        }
        for url in ["http://127.0.0.1:\(port)/hook", "http://localhost:\(port)/hook"] {
            #expect(failure(url, .publicOnly).contains("connect"), "\(url) was connected to")
            #expect(failure(url, .publicOrLoopback).contains("imeout"), "\(url) was not connected to")
        }
    }

    @Test func addressTextIsWhatCurlResolveTakes() {
        #expect(AddressPolicy.text([93, 184, 216, 34]) == "93.184.216.34")
        #expect(AddressPolicy.text(AddressPolicy.literal("2606:4700::1111")!) == "[2606:4700::1111]")
    }
}
