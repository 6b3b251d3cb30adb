import CRedis
import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// One hiredis connection, owned by one function process: connects by URL on first use (password and
/// database number honoured), bounds connect and every command by a timeout, and reconnects when it finds
/// the idle connection closed by the server (`CLIENT KILL`, a restart).
///
/// With a `redis-sentinel://` URL it asks the sentinels which server is the master (`SENTINEL
/// get-master-addr-by-name`), checks that it says so itself (`ROLE`), and asks again whenever the
/// connection is lost or the server has become a replica (`READONLY`): after a failover the next command
/// reaches the new master.
///
/// Not `Sendable`: used by one request at a time on the accept loop's thread; the `redisContext` has
/// exactly this owner, which frees it.
public final class RedisConnection {
    struct Endpoint: Equatable {
        struct Node: Equatable { var host: String; var port: Int32 }
        enum Address: Equatable { case tcp(host: String, port: Int32), unix(path: String), sentinel(nodes: [Node], master: String) }
        var address: Address
        var username: String?
        var password: String?
        var database: Int = 0
    }

    /// REDIS_URL, parsed once (nil when it cannot be: every command is then a 503 saying so).
    private let endpoint: Endpoint?
    public let timeoutMs: Int
    private var context: UnsafeMutablePointer<redisContext>?
    private var scriptSHAs: [ObjectIdentifier: String] = [:]
    /// The sentinel that answered last, asked first next time.
    private var sentinelIndex = 0

    public init(url: String, timeoutMs: Int = 1500) {
        self.endpoint = Self.parse(url)
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
        do {
            return try Self.send(try ready(), arguments, owner: self)
        } catch RedisError.reply(let message) where message.hasPrefix("READONLY") && isSentinel {
            // The server we hold was demoted by a failover and refused the write (nothing happened):
            // find the master again and send it there.
            close()
            return try Self.send(try ready(), arguments, owner: self)
        }
    }

    private var isSentinel: Bool {
        if case .sentinel? = endpoint?.address { return true }
        return false
    }

    /// One command on `ctx`; a transport failure closes `owner`'s connection (when it is `ctx`).
    private static func send(
        _ ctx: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]], owner: RedisConnection?
    ) throws -> RedisReply {
        var lengths = arguments.map { $0.count }
        var pointers: [UnsafeMutablePointer<CChar>?] = arguments.map { bytes in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBufferPointer { b in
                if let base = b.baseAddress {
                    p.withMemoryRebound(to: UInt8.self, capacity: bytes.count) { $0.update(from: base, count: bytes.count) }
                }
            }
            return p
        }
        defer { pointers.forEach { $0?.deallocate() } }
        let raw = pointers.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { argv in
                redisCommandArgv(ctx, Int32(arguments.count), argv, &lengths)
            }
        }
        guard let raw else {
            let message = errorText(ctx)
            if let owner, owner.context == ctx { owner.close() }
            throw DependencyUnavailable(.redis, detail: message)
        }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return try convert(reply)
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
        do {
            return try command(["EVALSHA", sha] + tail)
        } catch RedisError.reply(let message) where message.hasPrefix("NOSCRIPT") {
            // Flushed again between the load and the call (another client's SCRIPT FLUSH, a failover):
            // the source itself always runs.
            scriptSHAs[ObjectIdentifier(script)] = nil
            return try command(["EVAL", script.source] + tail)
        }
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
        guard let endpoint else {
            throw DependencyUnavailable(.redis, detail: "REDIS_URL cannot be parsed")
        }
        let timeout = Self.interval(ms: timeoutMs)
        let ctx: UnsafeMutablePointer<redisContext>
        switch endpoint.address {
        case .tcp(let host, let port): ctx = try Self.open(host: host, port: port, timeout: timeout)
        case .unix(let path): ctx = try Self.open(redisConnectUnixWithTimeout(path, timeout), timeout: timeout)
        case .sentinel(let nodes, let master): return try connectToMaster(nodes: nodes, name: master, endpoint: endpoint)
        }
        return try handshake(ctx, endpoint)
    }

    /// AUTH and SELECT on a new connection, which becomes this one's.
    private func handshake(_ ctx: UnsafeMutablePointer<redisContext>, _ endpoint: Endpoint) throws -> UnsafeMutablePointer<redisContext> {
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

    /// The master the sentinels name, asked in turn (the last one that answered first); the server must
    /// call itself master (a sentinel may not have noticed a failover yet). The sentinels share one
    /// timeout between them, so finding no master costs about the timeout, finding one at most twice it.
    private func connectToMaster(nodes: [Endpoint.Node], name: String, endpoint: Endpoint) throws -> UnsafeMutablePointer<redisContext> {
        var problems: [String] = []
        let timeout = Self.interval(ms: timeoutMs)
        let sentinelTimeout = Self.interval(ms: max(100, timeoutMs / nodes.count))
        for offset in 0..<nodes.count {
            let index = (sentinelIndex + offset) % nodes.count
            let node = nodes[index]
            let address: (host: String, port: Int32)
            do {
                let sentinel = try Self.open(host: node.host, port: node.port, timeout: sentinelTimeout)
                defer { redisFree(sentinel) }
                let reply = try Self.send(sentinel, ["SENTINEL", "get-master-addr-by-name", name].map { Array($0.utf8) }, owner: nil)
                guard case .array(let parts) = reply, parts.count == 2, let host = parts[0].string,
                    let port = parts[1].string.flatMap({ Int32($0) })
                else {
                    problems.append("sentinel \(node.host):\(node.port) knows no master named \(name)")
                    continue
                }
                address = (host, port)
            } catch {
                problems.append("sentinel \(node.host):\(node.port): \(error)")
                continue
            }
            do {
                let ctx = try handshake(try Self.open(host: address.host, port: address.port, timeout: timeout), endpoint)
                guard case .array(let role)? = try? Self.send(ctx, [Array("ROLE".utf8)], owner: nil), role.first?.string == "master" else {
                    redisFree(ctx)
                    problems.append("\(address.host):\(address.port), named by sentinel \(node.host):\(node.port), is not a master")
                    continue
                }
                sentinelIndex = index
                return ctx
            } catch {
                problems.append("master \(address.host):\(address.port): \(error)")
            }
        }
        throw DependencyUnavailable(.redis, detail: "no master for \(name): " + problems.joined(separator: "; "))
    }

    private static func interval(ms: Int) -> timeval { timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000) }

    private static func open(host: String, port: Int32, timeout: timeval) throws -> UnsafeMutablePointer<redisContext> {
        try open(redisConnectWithTimeout(host, port, timeout), timeout: timeout)
    }

    private static func open(_ made: UnsafeMutablePointer<redisContext>?, timeout: timeval) throws -> UnsafeMutablePointer<redisContext> {
        guard let ctx = made else { throw DependencyUnavailable(.redis, detail: "out of memory") }
        if ctx.pointee.err != 0 {
            let message = errorText(ctx)
            redisFree(ctx)
            throw DependencyUnavailable(.redis, detail: "connect: \(message)")
        }
        _ = redisSetTimeout(ctx, timeout)
        return ctx
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

    /// `redis://[[user]:password@]host[:port][/db]`, `unix:///path/to/socket[?db=N]`, or
    /// `redis-sentinel://[[user]:password@]host:port,host:port,…/master-name[/db]` (the credentials and
    /// database are the master's; the sentinels take none).
    static func parse(_ url: String) -> Endpoint? {
        if url.hasPrefix("redis-sentinel://") {
            var rest = Substring(url.dropFirst("redis-sentinel://".count))
            var credentials: Substring?
            if let at = rest.lastIndex(of: "@") {
                credentials = rest[..<at]
                rest = rest[rest.index(after: at)...]
            }
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3, !parts[1].isEmpty else { return nil }
            var nodes: [Endpoint.Node] = []
            for node in parts[0].split(separator: ",") {
                guard let colon = node.lastIndex(of: ":"), let port = Int32(node[node.index(after: colon)...]),
                    colon > node.startIndex
                else { return nil }
                nodes.append(.init(host: String(node[..<colon]), port: port))
            }
            guard !nodes.isEmpty else { return nil }
            var endpoint = Endpoint(address: .sentinel(nodes: nodes, master: PercentDecoding.decode(parts[1])))
            if parts.count == 3, !parts[2].isEmpty {
                guard let number = Int(parts[2]) else { return nil }
                endpoint.database = number
            }
            if let credentials {
                if let colon = credentials.firstIndex(of: ":") {
                    endpoint.username = PercentDecoding.decode(credentials[..<colon])
                    endpoint.password = PercentDecoding.decode(credentials[credentials.index(after: colon)...])
                } else {
                    endpoint.password = PercentDecoding.decode(credentials)
                }
            }
            return endpoint
        }
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
