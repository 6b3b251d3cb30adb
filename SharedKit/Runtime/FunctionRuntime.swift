import CFastCGI
public import Logging
public import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// Set from the SIGTERM handler; read by the accept loop between requests.
nonisolated(unsafe) private var terminationRequested: sig_atomic_t = 0
/// Whether the JSON log handler is installed (swift-log allows it once per process). Set on the one thread.
nonisolated(unsafe) private var loggingReady = false

/// The process around a function once it has built its services: a blocking FastCGI accept loop on fd 0
/// (the listening socket systemd or the supervisor hands over), one request at a time, each answered by the
/// dispatcher. Started without a socket it answers one request as plain CGI from the environment and stdin.
///
/// Scale to zero: with `FUNCTION_IDLE_SECONDS` above 0 the process exits (status 0) once it has waited
/// that long for a connection; the socket stays with systemd or the supervisor, which start a process
/// again on the next connection, so nothing queued is lost. Unset or 0: the process stays resident.
public struct FunctionRuntime {
    public let name: String
    /// The site's own origin, for the dispatcher's cross-site refusal.
    public let publicOrigin: String
    public let logger: Logger
    /// Where requests are counted (nil: not counted).
    public let metrics: ProcessMetrics?

    public init(name: String, publicOrigin: String, logger: Logger, metrics: ProcessMetrics?) {
        self.name = name
        self.publicOrigin = publicOrigin
        self.logger = logger
        self.metrics = metrics
    }

    /// Serves `router` until SIGTERM (or the idle timeout); `context` makes each handler's context from
    /// the runtime's per-request one.
    public func serve<Context>(_ router: Router<Context>, context: @escaping (RequestContext) -> Context) -> Never {
        let dispatcher = Dispatcher(router: router, publicOrigin: publicOrigin, logger: logger, metrics: metrics, context: context)

        guard FCGX_Init() == 0 else { Self.fail("\(name): cannot initialise libfcgi") }
        if FCGX_IsCGI() != 0 {
            let served = serveCGI(dispatcher)
            close(1)
            served.runAfterResponse()
            exit(0)
        }
        Self.installSignalHandlers()
        var request = FCGX_Request()
        guard FCGX_InitRequest(&request, 0, 0) == 0 else {
            Self.fail("\(name): cannot initialise the FastCGI request")
        }
        // The accept loop is ours; libfcgi reads and writes the connection it is handed. No signal is used
        // for the idle timeout: a SIGALRM inside libfcgi's accept could close a connection just accepted
        // (its AF_UNIX check) and, with a shutdown pending, spin. SO_RCVTIMEO on the listening socket (the
        // same for every process that shares it) makes accept() return every second to look at the clock.
        // SIGTERM interrupts accept() (no SA_RESTART) and is seen between requests.
        let idleSeconds = Self.idleSeconds()
        var wake = timeval()
        wake.tv_sec = 1
        _ = setsockopt(0, SOL_SOCKET, SO_RCVTIMEO, &wake, socklen_t(MemoryLayout<timeval>.size))
        let allowedPeers = Self.webServerAddresses()
        var lastRequest = Monotonic.now()
        var reason = "SIGTERM"
        var status: Int32 = 0
        while terminationRequested == 0 {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(0, $0, &length) }
            }
            if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            if fd < 0 {
                let error = errno
                if error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ECONNABORTED || error == EPROTO {
                    if idleSeconds > 0, Monotonic.now() - lastRequest >= Int64(idleSeconds) * 1_000_000_000 {
                        reason = "idle"
                        break
                    }
                    continue
                }
                reason = "accept failed: \(String(cString: strerror(error)))"
                status = 1  // not a planned exit: systemd (Restart=on-failure) and the supervisor restart it
                break
            }
            if !Self.peerAllowed(peer, allowedPeers, fd) {
                close(fd)
                continue
            }
            // Handed to libfcgi as an open connection: with keepConnection set, the FCGX_Finish_r that
            // FCGX_Accept_r starts with leaves it open; it then reads the request from it.
            request.ipcFd = fd
            request.keepConnection = 1
            guard FCGX_Accept_r(&request) >= 0 else {
                FCGX_Finish_r(&request)
                continue
            }
            let served = serveFastCGI(&request, dispatcher)
            FCGX_Finish_r(&request)
            served.runAfterResponse()
            lastRequest = Monotonic.now()
        }
        logger.info("stopping", metadata: ["reason": .string(reason)])
        exit(status)
    }

    /// `FCGI_WEB_SERVER_ADDRS`, as libfcgi reads it: the IPv4 addresses allowed to connect over TCP
    /// (comma-separated; empty: any). Unix sockets are not checked (their permissions are the fence).
    static func webServerAddresses() -> [String] {
        guard let raw = getenv("FCGI_WEB_SERVER_ADDRS") else { return [] }
        return String(cString: raw).split(separator: ",").map { $0.trimmingWhitespace().description }.filter { !$0.isEmpty }
    }

    /// A TCP peer must be one of `allowed` (when the list is set); TCP connections get TCP_NODELAY, as
    /// libfcgi's own accept gives them.
    static func peerAllowed(_ peer: sockaddr_storage, _ allowed: [String], _ fd: Int32) -> Bool {
        guard peer.ss_family == sa_family_t(AF_INET) || peer.ss_family == sa_family_t(AF_INET6) else { return true }
        var on: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        guard !allowed.isEmpty, peer.ss_family == sa_family_t(AF_INET) else { return true }
        var copy = peer
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        let ok = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address -> Bool in
                var ip = address.pointee.sin_addr
                return inet_ntop(AF_INET, &ip, &text, socklen_t(INET_ADDRSTRLEN)) != nil
            }
        }
        return ok && allowed.contains(String(nulTerminated: text))
    }

    /// The process's logger, writing one JSON object per line to stderr (the first call sets that up).
    public static func logger(name: String) -> Logger {
        if !loggingReady {
            LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
            loggingReady = true
        }
        return Logger(label: name)
    }

    /// Ends a process that cannot start (a configuration error), with one line naming the problem.
    public static func fail(_ line: String) -> Never {
        var bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        exit(78)  // EX_CONFIG
    }

    private static func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            terminationRequested = 1
            FCGX_ShutdownPending()
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0  // no SA_RESTART: a blocked accept() returns so the loop can end
        sigaction(SIGTERM, &action, nil)
        sigaction(SIGINT, &action, nil)
    }

    /// `FUNCTION_IDLE_SECONDS`: how long a process waits for a connection before it exits; 0 (the
    /// default) keeps it resident. A value that is not a whole number of seconds ends the process at start.
    static func idleSeconds() -> UInt32 {
        guard let raw = getenv("FUNCTION_IDLE_SECONDS") else { return 0 }
        let text = String(cString: raw)
        if text.isEmpty { return 0 }
        guard let value = UInt32(text), value <= 86_400 else {
            fail("configuration error: FUNCTION_IDLE_SECONDS must be a whole number of seconds from 0 to 86400, got \(text)")
        }
        return value
    }

    private func serveFastCGI<Context>(_ request: inout FCGX_Request, _ dispatcher: Dispatcher<Context>) -> RequestContext {
        var params: [String: String] = [:]
        params.reserveCapacity(32)
        if var pointer = request.envp {
            while let entry = pointer.pointee {
                // NAME=value as C bytes: split at the first '=' without making the whole line a String.
                let length = strlen(entry)
                entry.withMemoryRebound(to: UInt8.self, capacity: length) { bytes in
                    let line = UnsafeBufferPointer(start: bytes, count: length)
                    if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
                        params[String(decoding: UnsafeBufferPointer(rebasing: line[..<eq]), as: UTF8.self)] =
                            String(decoding: UnsafeBufferPointer(rebasing: line[(eq + 1)...]), as: UTF8.self)
                    }
                }
                pointer += 1
            }
        }
        let input = request.in
        let (response, served) = dispatcher.respond(
            to: params,
            readBody: { limit in
                var body = [UInt8](repeating: 0, count: limit)
                var filled = 0
                while filled < limit {
                    let n = body.withUnsafeMutableBytes { raw in
                        FCGX_GetStr(raw.baseAddress!.assumingMemoryBound(to: CChar.self) + filled, Int32(limit - filled), input)
                    }
                    if n <= 0 { break }
                    filled += Int(n)
                }
                return Array(body[..<filled])
            })
        var bytes = response.cgiBytes(includeBody: params["REQUEST_METHOD"] != "HEAD")
        let output = request.out
        _ = bytes.withUnsafeMutableBytes { raw in
            FCGX_PutStr(raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count), output)
        }
        return served
    }

    private func serveCGI<Context>(_ dispatcher: Dispatcher<Context>) -> RequestContext {
        let params = Config.processEnvironment()
        let (response, served) = dispatcher.respond(
            to: params,
            readBody: { limit in
                var body = [UInt8](repeating: 0, count: limit)
                var filled = 0
                while filled < limit {
                    let n = body.withUnsafeMutableBytes { read(0, $0.baseAddress! + filled, limit - filled) }
                    if n <= 0 { break }
                    filled += n
                }
                return Array(body[..<filled])
            })
        var bytes = response.cgiBytes(includeBody: params["REQUEST_METHOD"] != "HEAD")
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + written, $0.count - written) }
            if n <= 0 { break }
            written += n
        }
        return served
    }
}
