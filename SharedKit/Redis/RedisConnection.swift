#if canImport(Glibc)
import Glibc
#endif
import CRedis

/// One hiredis connection, owned by one function process: connects by URL on first use (password and
/// database number honoured), bounds connect and every command by a timeout, and reconnects when it finds
/// the idle connection closed by the server (`CLIENT KILL`, a restart).
///
/// `@unchecked Sendable`: used by one request at a time on the accept loop's thread; the `redisContext`
/// has exactly this owner, which frees it.
public final class RedisConnection: @unchecked Sendable {
    struct Endpoint: Equatable {
        enum Address: Equatable { case tcp(host: String, port: Int32), unix(path: String) }
        var address: Address
        var username: String?
        var password: String?
        var database: Int = 0
    }

    private let url: String
    public let timeoutMs: Int
    private var context: UnsafeMutablePointer<redisContext>?
    private var scriptSHAs: [ObjectIdentifier: String] = [:]

    public init(url: String, timeoutMs: Int = 1500) {
        self.url = url
        self.timeoutMs = timeoutMs
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Runs one command given as its arguments.
    @discardableResult
    public func command(_ arguments: String...) throws -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    @discardableResult
    public func command(_ arguments: [String]) throws -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    @discardableResult
    public func command(_ arguments: [[UInt8]]) throws -> RedisReply {
        let ctx = try ready()
        var lengths = arguments.map { $0.count }
        var pointers: [UnsafeMutablePointer<CChar>?] = arguments.map { bytes in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { b in
                if let base = b.baseAddress { p.withMemoryRebound(to: UInt8.self, capacity: bytes.count) { $0.update(from: base, count: bytes.count) } }
            }
            return p
        }
        defer { pointers.forEach { $0?.deallocate() } }
        let raw = pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { argv in
                redisCommandArgv(ctx, Int32(arguments.count), argv, &lengths)
            }
        }
        guard let raw else { throw lost(ctx) }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return try Self.convert(reply)
    }

    /// Runs a Lua script by SHA, loading it when the server does not know it (first use, `SCRIPT FLUSH`,
    /// a restart).
    @discardableResult
    public func run(_ script: RedisScript, keys: [String], arguments: [String]) throws -> RedisReply {
        let tail = [String(keys.count)] + keys + arguments
        if let sha = scriptSHAs[ObjectIdentifier(script)] {
            do {
                return try command(["EVALSHA", sha] + tail)
            } catch RedisError.reply(let message) where message.hasPrefix("NOSCRIPT") {
                scriptSHAs[ObjectIdentifier(script)] = nil
            }
        }
        guard let sha = try command("SCRIPT", "LOAD", script.source).string else {
            throw RedisError.reply("SCRIPT LOAD returned no SHA")
        }
        scriptSHAs[ObjectIdentifier(script)] = sha
        return try command(["EVALSHA", sha] + tail)
    }

    public func close() {
        if let context { redisFree(context) }
        context = nil
    }

    // MARK: Connection state

    private func ready() throws -> UnsafeMutablePointer<redisContext> {
        if let ctx = context {
            if ctx.pointee.err == 0, idleSocketIsQuiet(ctx.pointee.fd) { return ctx }
            close()
        }
        let ctx = try connect()
        context = ctx
        return ctx
    }

    /// Between commands nothing is owed to us; a readable socket means the server closed it.
    private func idleSocketIsQuiet(_ fd: Int32) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) == 0
    }

    private func connect() throws -> UnsafeMutablePointer<redisContext> {
        guard let endpoint = Self.parse(url) else {
            throw DependencyUnavailable(.redis, detail: "REDIS_URL cannot be parsed")
        }
        let timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, port, timeout)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, timeout)
        }
        guard let ctx = made else { throw DependencyUnavailable(.redis, detail: "out of memory") }
        if ctx.pointee.err != 0 {
            let message = Self.errorText(ctx)
            redisFree(ctx)
            throw DependencyUnavailable(.redis, detail: "connect: \(message)")
        }
        _ = redisSetTimeout(ctx, timeout)
        context = ctx
        scriptSHAs = [:]
        do {
            if let password = endpoint.password {
                if let username = endpoint.username, !username.isEmpty {
                    try command("AUTH", username, password)
                } else {
                    try command("AUTH", password)
                }
            }
            if endpoint.database != 0 { try command("SELECT", String(endpoint.database)) }
        } catch {
            close()
            throw error is DependencyUnavailable ? error : DependencyUnavailable(.redis, detail: "handshake: \(error)")
        }
        context = nil
        return ctx
    }

    private func lost(_ ctx: UnsafeMutablePointer<redisContext>) -> DependencyUnavailable {
        let message = Self.errorText(ctx)
        close()
        return DependencyUnavailable(.redis, detail: message)
    }

    private static func errorText(_ ctx: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafePointer(to: ctx.pointee.errstr) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) throws -> RedisReply {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            return .string(r.str.map { p in Array(UnsafeRawBufferPointer(start: p, count: r.len)) } ?? [])
        case REDIS_REPLY_STATUS:
            return .status(r.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            throw RedisError.reply(r.str.map { String(cString: $0) } ?? "error")
        case REDIS_REPLY_INTEGER:
            return .integer(Int(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            for i in 0..<r.elements {
                if let element = r.element[i] { items.append(try convert(element)) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    /// `redis://[[user]:password@]host[:port][/db]` or `unix:///path/to/socket[?db=N]`.
    static func parse(_ url: String) -> Endpoint? {
        if url.hasPrefix("unix://") {
            var rest = Substring(url.dropFirst("unix://".count))
            var database = 0
            if let mark = rest.firstIndex(of: "?") {
                let query = PercentDecoding.query(rest[rest.index(after: mark)...])
                database = query["db"]?.first.flatMap { Int($0) } ?? 0
                rest = rest[..<mark]
            }
            guard !rest.isEmpty else { return nil }
            return Endpoint(address: .unix(path: String(rest)), database: database)
        }
        guard url.hasPrefix("redis://") else { return nil }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                username = PercentDecoding.decode(credentials[..<colon])
                password = PercentDecoding.decode(credentials[credentials.index(after: colon)...])
            } else {
                password = PercentDecoding.decode(credentials)
            }
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let number = Int(db) else { return nil }
                database = number
            }
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port: Int32 = 6379
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let number = Int32(rest[rest.index(after: colon)...]) else { return nil }
            port = number
            host = String(rest[..<colon])
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return Endpoint(address: .tcp(host: host, port: port), username: username, password: password, database: database)
    }
}
