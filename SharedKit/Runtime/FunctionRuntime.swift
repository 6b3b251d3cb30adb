import CFastCGI
import CRedis  // where the importer finds timeval (hiredis includes sys/time.h first)
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Set from the SIGTERM handler; read by the accept loop between requests.
nonisolated(unsafe) private var terminationRequested: sig_atomic_t = 0

/// The process around a function: configuration, logging, then a blocking FastCGI accept loop on fd 0
/// (the listening socket systemd or the supervisor hands over), one request at a time. Started without
/// a socket it answers one request as plain CGI from the environment and stdin.
///
/// Scale to zero: with `FUNCTION_IDLE_SECONDS` above 0 the process exits (status 0) once it has waited
/// that long for a connection; the socket stays with systemd or the supervisor, which start a process
/// again on the next connection, so nothing queued is lost. Unset or 0: the process stays resident.
public struct FunctionRuntime {
    public let name: String
    /// Makes the remote media storage from the configuration (nil when none is configured).
    public let media: (@Sendable (Config) throws -> (any MediaStorage)?)?

    public init(name: String, media: (@Sendable (Config) throws -> (any MediaStorage)?)? = nil) {
        self.name = name
        self.media = media
    }

    public func serve(_ router: Router) -> Never {
        let context = Self.bootstrap(name: name, media: media)
        let dispatcher = Dispatcher(router: router)

        guard FCGX_Init() == 0 else { Self.fail("\(name): cannot initialise libfcgi") }
        if FCGX_IsCGI() != 0 {
            serveCGI(dispatcher, context)
            close(1)
            context.runAfterResponse()
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
            serveFastCGI(&request, dispatcher, context)
            FCGX_Finish_r(&request)
            context.runAfterResponse()
            lastRequest = Monotonic.now()
        }
        var logger = context.logger
        logger[metadataKey: "request.id"] = nil  // the last request's, not this line's
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

    /// Logging, libsodium and configuration: everything a function needs before its first request.
    /// A configuration problem ends the process here with one line naming the variable.
    public static func bootstrap(name: String, media: (@Sendable (Config) throws -> (any MediaStorage)?)? = nil) -> Context {
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        var logger = Logger(label: name)
        Random.initialise()
        do {
            let config = try Config.fromProcess()
            logger.logLevel = Logger.Level(rawValue: config.logLevel) ?? .info
            let context = try Context(config: config, functionName: name, logger: logger)
            context.remoteMedia = try media?(config)
            return context
        } catch {
            fail("\(name): configuration error: \(error)")
        }
    }

    static func fail(_ line: String) -> Never {
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

    private func serveFastCGI(_ request: inout FCGX_Request, _ dispatcher: Dispatcher, _ context: Context) {
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
        let response = dispatcher.respond(
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
            }, context: context)
        var bytes = response.cgiBytes(includeBody: params["REQUEST_METHOD"] != "HEAD")
        let output = request.out
        _ = bytes.withUnsafeMutableBytes { raw in
            FCGX_PutStr(raw.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(raw.count), output)
        }
    }

    private func serveCGI(_ dispatcher: Dispatcher, _ context: Context) {
        let params = Config.processEnvironment()
        let response = dispatcher.respond(
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
            }, context: context)
        var bytes = response.cgiBytes(includeBody: params["REQUEST_METHOD"] != "HEAD")
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + written, $0.count - written) }
            if n <= 0 { break }
            written += n
        }
    }
}
