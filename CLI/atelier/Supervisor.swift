import SharedKit
import SharedKitCore

#if canImport(Glibc)
import Glibc
#endif

/// `atelier supervise`: the process manager of `make run` (systemd plays this part in production).
///
/// For each function it binds a Unix socket and starts processes that share it as fd 0, the way systemd's
/// `StandardInput=socket` does. Each function has a minimum of resident processes (started at once and
/// again when one dies), a maximum, and an idle timeout: a process beyond the minimum is started when a
/// connection waits on the socket (at once when none runs, after 20 ms in the backlog when all are busy)
/// and exits by itself after the idle timeout without a connection (`FUNCTION_IDLE_SECONDS`). A function
/// with a minimum of 0 scales to zero; its socket stays open here, so the next connection starts it and
/// waits in the backlog meanwhile. SIGHUP restarts the
/// functions named in the control file one process at a time: a new process starts, and only once it has
/// stayed up for a second does one old process get SIGTERM (it finishes its request first). The socket
/// stays open throughout, so no request is lost, and a new binary that will not start leaves the old
/// processes serving. Cron functions run on their interval. SIGINT/SIGTERM stop everything.
final class Supervisor {
    struct Function {
        let name: String
        /// Processes kept running whatever the traffic.
        let minimum: Int
        /// The most processes started, on demand, beyond which connections wait in the backlog.
        let maximum: Int
        /// How long a process beyond the minimum waits for a connection before it exits (0: never).
        let idleSeconds: Int
        var socket: Int32 = -1
        /// When a connection was first seen waiting while processes ran (all busy, perhaps).
        var waitingSince: Int64? = nil
        /// The socket is not watched before this time (a process was just started, or one is checking).
        var quietUntil: Int64 = 0
        /// After a process died young, no new one starts before this time (a crash loop is slowed down).
        var notBefore: Int64 = 0
    }

    struct Cron {
        let name: String
        let intervalSeconds: Int
        var nextRun: Int64 = 0
        var pid: pid_t = 0
    }

    struct Worker {
        let function: String
        let started: Int64
        /// One of the function's minimum: restarted when it dies, never told to idle out.
        let resident: Bool
        var retiring = false
    }

    /// One function being restarted: the old processes still to replace, and the new one on probation.
    struct RollingRestart {
        let function: String
        var remaining: [pid_t]
        var fresh: pid_t?
        var freshStarted: Int64 = 0
        var replaced = 0
    }

    /// How long a new process must stay up before an old one is stopped.
    static let probationMs: Int64 = 1000
    /// How long a connection may wait in the backlog of a busy function before another process starts.
    static let backlogGraceMs: Int64 = 20
    /// After starting a process for a busy function, how long before the backlog is looked at again.
    static let scaleUpPauseMs: Int64 = 200

    let socketDir: String
    let binDir: String
    let logDir: String
    let controlFile: String
    var functions: [Function]
    var crons: [Cron]
    var workers: [pid_t: Worker] = [:]
    /// Restarts waiting out a back-off after a process died young: (due time, function).
    var delayedStarts: [(Int64, String)] = []
    var rolling: [RollingRestart] = []
    /// Restarts counted for /metrics (atelier_process_restarts_total), in the host's metrics directory.
    let metrics = ProcessMetrics(directory: MetricsDirectory.configured(), process: "supervisor")

    init(socketDir: String, binDir: String, logDir: String, controlFile: String, functions: [Function], crons: [Cron]) {
        self.socketDir = socketDir
        self.binDir = binDir
        self.logDir = logDir
        self.controlFile = controlFile
        self.functions = functions
        self.crons = crons
    }

    static func main(sockets: String, bin: String, functions list: String, cron: String, logs: String?, control: String?) throws -> Int32 {
        let functions = try scaling(list)
        let crons = try pairs(cron).map { Cron(name: $0.0, intervalSeconds: $0.1) }
        let logs = logs ?? sockets
        let supervisor = Supervisor(
            socketDir: sockets, binDir: bin, logDir: logs, controlFile: control ?? "\(sockets)/reload",
            functions: functions, crons: crons)
        return try supervisor.run()
    }

    /// `name=N` (N resident processes) or `name=MIN:MAX:IDLE` (MIN resident, at most MAX, extra processes
    /// exit after IDLE seconds without a connection), comma-separated.
    static func scaling(_ text: String) throws -> [Function] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            let numbers = parts.count == 2 ? parts[1].split(separator: ":", omittingEmptySubsequences: false).map { Int($0) } : []
            let name = parts.first.map(String.init) ?? ""
            switch numbers.count {
            case 1:
                if let n = numbers[0], n > 0, !name.isEmpty { return Function(name: name, minimum: n, maximum: n, idleSeconds: 0) }
            case 3:
                if let minimum = numbers[0], let maximum = numbers[1], let idle = numbers[2], !name.isEmpty,
                    minimum >= 0, maximum >= 1, minimum <= maximum, idle >= 0, idle <= 86_400,
                    minimum == maximum || idle > 0
                {
                    return Function(name: name, minimum: minimum, maximum: maximum, idleSeconds: idle)
                }
            default: break
            }
            throw Commands.UsageError(
                message: "expected name=N or name=MIN:MAX:IDLE_SECONDS (MIN ≤ MAX, MAX ≥ 1, IDLE > 0 when MIN < MAX), got \(item)")
        }
    }

    static func pairs(_ text: String) throws -> [(String, Int)] {
        try text.split(separator: ",").map { item in
            let parts = item.split(separator: "=")
            guard parts.count == 2, let n = Int(parts[1]), n > 0 else {
                throw Commands.UsageError(message: "expected name=N, got \(item)")
            }
            return (String(parts[0]), n)
        }
    }

    func run() throws -> Int32 {
        // Signals arrive through a pipe (the handlers write a byte), so one poll() waits for them and for
        // connections on the sockets of functions that may need a process.
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGCHLD, SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, s) }
        sigprocmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)
        try SignalPipe.install([SIGCHLD, SIGINT, SIGTERM, SIGHUP])
        sigprocmask(SIG_UNBLOCK, &signals, nil)

        do {
            for index in functions.indices {
                functions[index].socket = try listen(functions[index].name)
            }
            for function in functions {
                for _ in 0..<function.minimum { try spawnWorker(function.name) }
            }
        } catch {
            shutdown()  // never leave the processes already started behind
            throw error
        }
        log(
            "started "
                + functions.map { f in
                    f.minimum == f.maximum ? "\(f.name)×\(f.minimum)" : "\(f.name)×\(f.minimum)…\(f.maximum) idle \(f.idleSeconds)s"
                }.joined(separator: " "))
        let now = WallClock.nowSeconds()
        for index in crons.indices { crons[index].nextRun = now + 2 }

        while true {
            var watched: [Int] = []
            let timeout = prepareWatch(&watched)
            var fds = [pollfd(fd: SignalPipe.readFD, events: Int16(POLLIN), revents: 0)]
            fds += watched.map { pollfd(fd: functions[$0].socket, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if ready > 0 {
                for (slot, index) in watched.enumerated() where fds[slot + 1].revents & Int16(POLLIN) != 0 {
                    connectionWaiting(index)
                }
            }
            let caught = SignalPipe.drain()
            if caught.contains(SIGCHLD) { reap() }
            if caught.contains(SIGINT) || caught.contains(SIGTERM) {
                shutdown()
                return 0
            }
            if caught.contains(SIGHUP) { reload() }
            runDue()
            advanceRolling()
        }
    }

    // MARK: Scaling

    private func running(_ name: String) -> Int {
        workers.values.reduce(0) { $0 + ($1.function == name && !$1.retiring ? 1 : 0) }
    }

    /// Decides which sockets to watch and how long poll() may wait: a function below its maximum is
    /// watched unless it is in a pause; one that saw a connection waiting while busy is checked again
    /// once the grace has passed, and gets another process if the connection still waits.
    private func prepareWatch(_ watched: inout [Int]) -> Int64 {
        let now = Monotonic.nowMs()
        var timeout: Int64 = rolling.isEmpty ? 1000 : 50
        for index in functions.indices {
            let function = functions[index]
            let count = running(function.name)
            guard count < function.maximum else {
                functions[index].waitingSince = nil
                continue
            }
            if now < function.notBefore {
                timeout = min(timeout, function.notBefore - now)
                continue
            }
            if now < function.quietUntil {
                timeout = min(timeout, function.quietUntil - now)
                continue
            }
            if function.waitingSince != nil {
                // The grace is over: is a connection still waiting for one of the busy processes?
                functions[index].waitingSince = nil
                if Self.readable(function.socket) {
                    startOnDemand(index, now: now)
                    timeout = min(timeout, Self.scaleUpPauseMs)
                    continue
                }
            }
            watched.append(index)
        }
        return max(timeout, 0)
    }

    /// A connection waits on a function's socket: with no process running one starts at once; with all of
    /// them perhaps busy, another starts if the connection is still waiting after the grace.
    private func connectionWaiting(_ index: Int) {
        let now = Monotonic.nowMs()
        if running(functions[index].name) == 0 {
            startOnDemand(index, now: now)
        } else {
            functions[index].waitingSince = now
            functions[index].quietUntil = now + Self.backlogGraceMs
        }
    }

    private func startOnDemand(_ index: Int, now: Int64) {
        functions[index].quietUntil = now + Self.scaleUpPauseMs
        do { try spawnWorker(functions[index].name) } catch { log("\(error)") }
    }

    private static func readable(_ fd: Int32) -> Bool {
        var probe = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&probe, 1, 0) > 0 && probe.revents & Int16(POLLIN) != 0
    }

    // MARK: Workers

    private func listen(_ name: String) throws -> Int32 {
        let path = "\(socketDir)/\(name).sock"
        unlink(path)
        // Close-on-exec: each worker gets its own function's socket as fd 0 (dup2 clears the flag there)
        // and inherits no other function's socket.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Commands.UsageError(message: "socket(): \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Commands.UsageError(message: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw Commands.UsageError(message: "bind \(path): \(String(cString: strerror(errno)))") }
        chmod(path, 0o660)
        guard Glibc.listen(fd, 511) == 0 else { throw Commands.UsageError(message: "listen \(path): \(String(cString: strerror(errno)))") }
        return fd
    }

    private func residents(_ name: String) -> Int {
        workers.values.reduce(0) { $0 + ($1.function == name && $1.resident && !$1.retiring ? 1 : 0) }
    }

    /// Starts one process of a function: resident while the function has fewer than its minimum (or when
    /// `resident` says so, for a replacement), otherwise one that exits after the idle timeout.
    @discardableResult
    private func spawnWorker(_ name: String, resident: Bool? = nil) throws -> pid_t {
        guard let function = functions.first(where: { $0.name == name }) else { return 0 }
        let isResident = resident ?? (residents(name) < function.minimum)
        let idle = isResident ? 0 : function.idleSeconds
        let pid = try spawn(
            binary: "\(binDir)/\(name)", stdin: function.socket, log: "\(logDir)/\(name).log",
            environment: ["FUNCTION_IDLE_SECONDS=\(idle)"])
        workers[pid] = Worker(function: name, started: Monotonic.nowMs(), resident: isResident)
        return pid
    }

    private func spawn(binary: String, stdin: Int32?, log: String, environment: [String] = []) throws -> pid_t {
        let logFD = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        defer { if logFD >= 0 { close(logFD) } }
        let nullFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if nullFD >= 0 { close(nullFD) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin ?? nullFD, 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        // Own process group: a Ctrl-C at the terminal reaches the supervisor, which stops workers in order.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(binary), nil]
        defer { argv.forEach { free($0) } }
        // The supervisor's environment with the given variables set (replacing any inherited value).
        let names = environment.map { $0.prefix { $0 != "=" } + "=" }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) }
        var inherited = environ
        while let entry = inherited.pointee {
            let text = String(cString: entry)
            if !names.contains(where: { text.hasPrefix($0) }) { envp.append(strdup(entry)) }
            inherited += 1
        }
        envp.append(nil)
        defer { envp.forEach { free($0) } }
        let result = posix_spawn(&pid, binary, &actions, &attributes, argv, envp)
        guard result == 0 else { throw Commands.UsageError(message: "cannot start \(binary): \(String(cString: strerror(result)))") }
        return pid
    }

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }
            if let index = crons.firstIndex(where: { $0.pid == pid }) {
                crons[index].pid = 0
                if status != 0 { log("cron \(crons[index].name) exited with status \(status)") }
                continue
            }
            guard let worker = workers.removeValue(forKey: pid) else { continue }
            if worker.retiring { continue }
            if let index = rolling.firstIndex(where: { $0.fresh == pid }) {
                // The new binary did not stay up: keep the old processes serving and stop the rollout.
                log(
                    "reload of \(worker.function) stopped: the new process \(pid) exited (status \(status)); the old processes keep serving"
                )
                rolling.remove(at: index)
                continue
            }
            let lived = Monotonic.nowMs() - worker.started
            if !worker.resident {
                // Started on demand: an idle exit is the plan; the next connection starts a process again.
                if status != 0 {
                    log("\(worker.function) process \(pid) died (status \(status)) after \(lived) ms")
                    // Started again by the next connection: a restart all the same.
                    metrics.count("atelier_process_restarts_total", ["function": worker.function])
                    if lived < 1000, let index = functions.firstIndex(where: { $0.name == worker.function }) {
                        functions[index].notBefore = Monotonic.nowMs() + 1000  // back off a crash loop
                    }
                }
                continue
            }
            log("\(worker.function) process \(pid) died (status \(status)) after \(lived) ms; restarting")
            metrics.count("atelier_process_restarts_total", ["function": worker.function])
            if lived < 1000 {
                delayedStarts.append((Monotonic.nowMs() + 1000, worker.function))  // back off a crash loop
            } else {
                do { try spawnWorker(worker.function, resident: true) } catch { log("\(error)") }
            }
        }
    }

    /// Queues a rolling restart of the functions named in the control file, which is consumed (renamed,
    /// read, removed) so a name is acted on once; reloads asked for in quick succession all count.
    private func reload() {
        let taken = controlFile + ".taken"
        guard rename(controlFile, taken) == 0 else {
            log("reload: no function named in \(controlFile)")
            return
        }
        let requested = (readText(taken) ?? "").split(whereSeparator: { $0 == "\n" || $0 == " " || $0 == "," }).map(String.init)
        unlink(taken)
        for name in Set(requested) {
            guard functions.contains(where: { $0.name == name }) else {
                log("reload: there is no function named \(name)")
                continue
            }
            if rolling.contains(where: { $0.function == name }) { continue }
            let old = workers.filter { $0.value.function == name && !$0.value.retiring }.map(\.key).sorted()
            rolling.append(RollingRestart(function: name, remaining: old))
        }
        advanceRolling()
    }

    /// One step of each rolling restart: start a new process, and once it has passed its probation stop
    /// one old process; repeat until none of the old ones is left.
    private func advanceRolling() {
        let now = Monotonic.nowMs()
        var finished: [Int] = []
        for index in rolling.indices {
            var step = rolling[index]
            if let fresh = step.fresh {
                guard workers[fresh] != nil, now - step.freshStarted >= Self.probationMs else { continue }
                if let old = step.remaining.first {
                    step.remaining.removeFirst()
                    if workers[old] != nil {
                        workers[old]?.retiring = true
                        kill(old, SIGTERM)
                        step.replaced += 1
                    }
                }
                step.fresh = nil
            }
            // Old processes that idled out meanwhile need no replacement.
            step.remaining.removeAll { workers[$0] == nil }
            if step.remaining.isEmpty {
                log("reloaded \(step.function) (\(step.replaced) processes replaced)")
                finished.append(index)
            } else {
                do {
                    step.fresh = try spawnWorker(step.function, resident: workers[step.remaining[0]]?.resident ?? false)
                    step.freshStarted = now
                } catch {
                    log("reload of \(step.function) stopped: \(error)")
                    finished.append(index)
                }
            }
            rolling[index] = step
        }
        for index in finished.reversed() { rolling.remove(at: index) }
    }

    private func runDue() {
        let now = Monotonic.nowMs()
        let due = delayedStarts.filter { $0.0 <= now }
        delayedStarts.removeAll { $0.0 <= now }
        for (_, name) in due {
            // A connection may have started one meanwhile: top up to the minimum only.
            guard let function = functions.first(where: { $0.name == name }),
                residents(name) < function.minimum
            else { continue }
            do { try spawnWorker(name, resident: true) } catch { log("\(error)") }
        }
        let wall = WallClock.nowSeconds()
        for index in crons.indices where crons[index].nextRun <= wall {
            crons[index].nextRun = wall + Int64(crons[index].intervalSeconds)
            guard crons[index].pid == 0 else { continue }  // the previous run is still going
            let name = crons[index].name
            do {
                crons[index].pid = try spawn(binary: "\(binDir)/\(name)", stdin: nil, log: "\(logDir)/\(name).log")
            } catch {
                log("cron \(name): \(error)")
            }
        }
    }

    private func shutdown() {
        log("stopping")
        for pid in workers.keys { kill(pid, SIGTERM) }
        for cron in crons where cron.pid != 0 { kill(cron.pid, SIGTERM) }
        let deadline = Monotonic.nowMs() + 10_000
        while Monotonic.nowMs() < deadline {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid < 0 { break }  // no children left
            if pid == 0 { usleep(20_000) }
        }
        for pid in workers.keys { kill(pid, SIGKILL) }
        for function in functions {
            close(function.socket)
            unlink("\(socketDir)/\(function.name).sock")
        }
    }

    private func log(_ message: String) {
        var bytes = Array("supervisor: \(message)\n".utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    private func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 4096)
        var text = ""
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            text += buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        return text
    }
}

/// Signals as bytes on a pipe: each handler writes its signal number (async-signal-safe), and the loop
/// reads them after poll() returns.
enum SignalPipe {
    nonisolated(unsafe) static var readFD: Int32 = -1
    nonisolated(unsafe) static var writeFD: Int32 = -1

    static func install(_ signals: [Int32]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw Commands.UsageError(message: "pipe(): \(String(cString: strerror(errno)))")
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds[0]
        writeFD = fds[1]
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { caught in
                var byte = UInt8(truncatingIfNeeded: caught)
                let saved = errno
                _ = write(SignalPipe.writeFD, &byte, 1)
                errno = saved
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
    }

    /// The signals caught since the last call.
    static func drain() -> Set<Int32> {
        var caught = Set<Int32>()
        var buffer = [UInt8](repeating: 0, count: 64)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            for byte in buffer[..<n] { caught.insert(Int32(byte)) }
        }
        return caught
    }
}

extension Monotonic {
    static func nowMs() -> Int64 { now() / 1_000_000 }
}
