#if canImport(Glibc)
import Glibc
#endif
import SharedKit

/// `atelier supervise`: the process manager of `make run` (systemd plays this part in production).
///
/// For each function it binds a Unix socket and starts N processes that share it as fd 0, the way
/// systemd's `StandardInput=socket` does; a process that dies is started again. SIGHUP restarts the
/// functions named in the control file one process at a time: a new process starts, and only once it has
/// stayed up for a second does one old process get SIGTERM (it finishes its request first). The socket
/// stays open throughout, so no request is lost, and a new binary that will not start leaves the old
/// processes serving. Cron functions run on their interval. SIGINT/SIGTERM stop everything.
final class Supervisor {
    struct Function {
        let name: String
        let processes: Int
        var socket: Int32 = -1
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

    init(socketDir: String, binDir: String, logDir: String, controlFile: String, functions: [Function], crons: [Cron]) {
        self.socketDir = socketDir
        self.binDir = binDir
        self.logDir = logDir
        self.controlFile = controlFile
        self.functions = functions
        self.crons = crons
    }

    static func main(_ arguments: [String]) throws -> Int32 {
        let options = try Commands.options(arguments)
        guard let sockets = options["sockets"], let bin = options["bin"], let list = options["functions"] else {
            throw Commands.UsageError(message: "supervise needs --sockets, --bin and --functions")
        }
        let functions = try pairs(list).map { Function(name: $0.0, processes: $0.1) }
        let crons = try pairs(options["cron"] ?? "").map { Cron(name: $0.0, intervalSeconds: $0.1) }
        let logs = options["logs"] ?? sockets
        let supervisor = Supervisor(
            socketDir: sockets, binDir: bin, logDir: logs, controlFile: options["control"] ?? "\(sockets)/reload",
            functions: functions, crons: crons)
        return try supervisor.run()
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
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGCHLD, SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, s) }
        sigprocmask(SIG_BLOCK, &signals, nil)
        signal(SIGPIPE, SIG_IGN)

        do {
            for index in functions.indices {
                functions[index].socket = try listen(functions[index].name)
            }
            for function in functions {
                for _ in 0..<function.processes { try spawnWorker(function.name) }
            }
        } catch {
            shutdown()  // never leave the processes already started behind
            throw error
        }
        log("started \(functions.map { "\($0.name)×\($0.processes)" }.joined(separator: " "))")
        let now = WallClock.nowSeconds()
        for index in crons.indices { crons[index].nextRun = now + 2 }

        while true {
            var info = siginfo_t()
            var timeout = rolling.isEmpty ? timespec(tv_sec: 1, tv_nsec: 0) : timespec(tv_sec: 0, tv_nsec: 50_000_000)
            let signal = sigtimedwait(&signals, &info, &timeout)
            switch signal {
            case SIGCHLD: reap()
            case SIGINT, SIGTERM:
                shutdown()
                return 0
            case SIGHUP: reload()
            default: break
            }
            runDue()
            advanceRolling()
        }
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

    @discardableResult
    private func spawnWorker(_ name: String) throws -> pid_t {
        guard let function = functions.first(where: { $0.name == name }) else { return 0 }
        let pid = try spawn(binary: "\(binDir)/\(name)", stdin: function.socket, log: "\(logDir)/\(name).log")
        workers[pid] = Worker(function: name, started: Monotonic.nowMs())
        return pid
    }

    private func spawn(binary: String, stdin: Int32?, log: String) throws -> pid_t {
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
        let result = posix_spawn(&pid, binary, &actions, &attributes, argv, environ)
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
                log("reload of \(worker.function) stopped: the new process \(pid) exited (status \(status)); the old processes keep serving")
                rolling.remove(at: index)
                continue
            }
            let lived = Monotonic.nowMs() - worker.started
            log("\(worker.function) process \(pid) died (status \(status)) after \(lived) ms; restarting")
            if lived < 1000 {
                delayedStarts.append((Monotonic.nowMs() + 1000, worker.function))  // back off a crash loop
            } else {
                do { try spawnWorker(worker.function) } catch { log("\(error)") }
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
                    workers[old]?.retiring = true
                    kill(old, SIGTERM)
                    step.replaced += 1
                }
                step.fresh = nil
            }
            if step.remaining.isEmpty {
                log("reloaded \(step.function) (\(step.replaced) processes replaced)")
                finished.append(index)
            } else {
                do {
                    step.fresh = try spawnWorker(step.function)
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
            do { try spawnWorker(name) } catch { log("\(error)") }
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
        while fgets(&buffer, Int32(buffer.count), file) != nil { text += String(cString: buffer) }
        return text
    }
}

extension Monotonic {
    static func nowMs() -> Int64 { now() / 1_000_000 }
}
