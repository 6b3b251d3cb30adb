import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// This process's counters, in a file of the host's metrics directory that the process maps into memory.
///
/// Where the numbers live, and why: Atelier's processes are many and short-lived (each function runs
/// several, on-demand ones exit when idle, crons run for seconds), so a counter kept in a process's memory
/// dies with it, and one kept in Redis or PostgreSQL would add a round trip to every request and stop
/// counting exactly when those are down (the 503s worth counting). Instead each process writes its own
/// file under METRICS_DIR (tmpfs in production: /run/atelier/metrics): a new series is appended, a count
/// is a store into shared memory, no lock and no system call on the request path. The scrape
/// (`MetricsDirectory.collect`) sums every file of the host; files of processes that have exited are
/// folded into one `retired` file, so counts survive their process and the directory stays small. This
/// is the layout prometheus_client's multiprocess mode uses (one mmap file per process, summed at scrape).
///
/// A file is `ATLMET01`, the bytes in use (UInt32 little-endian, written after each new entry is
/// complete), then entries: key length (UInt32 LE), the key (a Prometheus series: name and labels) padded
/// to 8 bytes, and its value (Float64 LE). Values change in place.
public final class Metrics {
    static let magic = Array("ATLMET01".utf8)
    static let headerBytes = 16
    static let capacity = 1 << 20

    let fd: Int32
    let base: UnsafeMutableRawPointer
    var used: Int
    var offsets: [String: Int] = [:]
    var full = false

    /// Opens a new file for this process (`<process>-<pid>-<random>.metrics`); nil when the directory
    /// cannot be used (counting then stops, serving does not).
    public init?(directory: String, process: String) {
        var current = directory.hasPrefix("/") ? "" : "."
        for part in directory.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
        let name = "\(process)-\(getpid())-\(Random.hex(byteCount: 4))"
        // Created under a temporary name, locked, then renamed: a scrape never sees a file whose process
        // has not locked it yet (it would take it for a dead one).
        let temporary = "\(directory)/\(name).tmp"
        let fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX) == 0, ftruncate(fd, off_t(Self.capacity)) == 0,
            let mapped = mmap(nil, Self.capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapped != MAP_FAILED
        else {
            close(fd)
            unlink(temporary)
            return nil
        }
        self.fd = fd
        self.base = mapped
        self.used = Self.headerBytes
        Self.magic.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: 8) }
        base.storeBytes(of: UInt32(used).littleEndian, toByteOffset: 8, as: UInt32.self)
        guard rename(temporary, "\(directory)/\(name).metrics") == 0 else {
            munmap(mapped, Self.capacity)
            close(fd)
            unlink(temporary)
            return nil
        }
    }

    deinit {
        munmap(base, Self.capacity)
        close(fd)  // releases the lock: the next scrape folds this file into the retired counts
    }

    /// Adds `amount` to the series `key` (`name{label="value",…}`).
    public func add(_ key: String, _ amount: Double = 1) {
        guard let offset = offset(of: key) else { return }
        add(at: offset, amount)
    }

    /// Adds to the value at `offset` (from `offset(of:)`): the request path's way, with no lookup.
    func add(at offset: Int, _ amount: Double) {
        let value = base.load(fromByteOffset: offset, as: Double.self)
        base.storeBytes(of: value + amount, toByteOffset: offset, as: Double.self)
    }

    /// Where `key`'s value is, appending the series the first time.
    func offset(of key: String) -> Int? {
        if let known = offsets[key] { return known }
        guard !full else { return nil }
        let bytes = Array(key.utf8)
        let padded = bytes.count + (8 - (bytes.count + 4) % 8)
        let size = 4 + padded + 8
        guard used + size <= Self.capacity else {
            full = true
            return nil
        }
        base.storeBytes(of: UInt32(bytes.count).littleEndian, toByteOffset: used, as: UInt32.self)
        bytes.withUnsafeBytes { (base + used + 4).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        let offset = used + 4 + padded
        base.storeBytes(of: 0.0, toByteOffset: offset, as: Double.self)
        used += size
        atomicMemoryFence(ordering: .releasing)  // the entry is complete before a reader can see it counted
        base.storeBytes(of: UInt32(used).littleEndian, toByteOffset: 8, as: UInt32.self)
        offsets[key] = offset
        return offset
    }

    /// A series key: the name and its labels, values escaped as the exposition format wants.
    public static func key(_ name: String, _ labels: KeyValuePairs<String, String>) -> String {
        guard !labels.isEmpty else { return name }
        var key = name + "{"
        var first = true
        for (label, value) in labels {
            if !first { key += "," }
            first = false
            key += label + "=\"" + escape(value) + "\""
        }
        return key + "}"
    }

    static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// Parses a file's entries (its own or the retired one).
    static func entries(of bytes: UnsafeRawBufferPointer) -> [(String, Double)] {
        guard bytes.count >= headerBytes, Array(bytes[0..<8]) == magic else { return [] }
        let used = min(Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))), bytes.count)
        atomicMemoryFence(ordering: .acquiring)  // pairs with the writer's release: entries below `used` are complete
        var position = headerBytes
        var found: [(String, Double)] = []
        while position + 4 <= used {
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
            let padded = length + (8 - (length + 4) % 8)
            guard position + 4 + padded + 8 <= used else { break }
            let key = String(decoding: bytes[(position + 4)..<(position + 4 + length)], as: UTF8.self)
            let value = bytes.loadUnaligned(fromByteOffset: position + 4 + padded, as: Double.self)
            found.append((key, value))
            position += 4 + padded + 8
        }
        return found
    }

    /// A file's bytes for `values` (the retired file).
    static func encode(_ values: [String: Double]) -> [UInt8] {
        var bytes = magic + [UInt8](repeating: 0, count: 8)
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            let utf8 = Array(key.utf8)
            let padded = utf8.count + (8 - (utf8.count + 4) % 8)
            bytes += withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { Array($0) }
            bytes += utf8 + [UInt8](repeating: 0, count: padded - utf8.count)
            bytes += withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) }
        }
        let used = UInt32(bytes.count).littleEndian
        withUnsafeBytes(of: used) { for i in 0..<4 { bytes[8 + i] = $0[i] } }
        return bytes
    }
}

/// Summing a host's metrics files at scrape time.
public enum MetricsDirectory {
    /// METRICS_DIR, else `<RUN_DIR>/metrics` (the rule `Context.metrics` follows), for processes without a
    /// `Config` (the supervisor).
    public static func configured() -> String {
        func variable(_ name: String) -> String? {
            guard let raw = getenv(name) else { return nil }
            let value = String(cString: raw)
            return value.isEmpty ? nil : value
        }
        return variable("METRICS_DIR") ?? "\(variable("RUN_DIR") ?? ".run")/metrics"
    }

    /// Every series of the directory summed over all its files. Files whose process has exited (their lock
    /// is free) are folded into `retired.metrics` and removed, under the directory's own lock so that two
    /// scrapes never fold one file twice.
    public static func collect(_ directory: String) -> [String: Double] {
        mkdir(directory, 0o755)
        let lockFD = open("\(directory)/.lock", O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { return [:] }
        defer { close(lockFD) }
        flock(lockFD, LOCK_EX)
        defer { flock(lockFD, LOCK_UN) }

        let retiredPath = "\(directory)/retired.metrics"
        var retired: [String: Double] = [:]
        for (key, value) in read(retiredPath) { retired[key, default: 0] += value }
        var totals = retired
        var folded: [String] = []
        for name in files(in: directory) where name.hasSuffix(".tmp") && name != "retired.metrics.tmp" {
            // A process that died while opening its file (it holds the lock from the start otherwise).
            let fd = open("\(directory)/\(name)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { unlink("\(directory)/\(name)") }
            close(fd)
        }
        for name in files(in: directory) where name.hasSuffix(".metrics") && name != "retired.metrics" {
            let path = "\(directory)/\(name)"
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let dead = flock(fd, LOCK_EX | LOCK_NB) == 0
            let values = read(fd: fd)
            close(fd)
            for (key, value) in values { totals[key, default: 0] += value }
            if dead {
                for (key, value) in values { retired[key, default: 0] += value }
                folded.append(path)
            }
        }
        if !folded.isEmpty {
            // The new retired counts are in place before the files they include go.
            let temporary = retiredPath + ".tmp"
            let bytes = Metrics.encode(retired)
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            if fd >= 0 {
                let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                if written == bytes.count, rename(temporary, retiredPath) == 0 {
                    for path in folded { unlink(path) }
                }
            }
        }
        return totals
    }

    static func files(in directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            names.append(name)
        }
        return names
    }

    static func read(_ path: String) -> [(String, Double)] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        return read(fd: fd)
    }

    static func read(fd: Int32) -> [(String, Double)] {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size >= Metrics.headerBytes else { return [] }
        let size = Int(info.st_size)
        guard let mapped = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), mapped != MAP_FAILED else { return [] }
        defer { munmap(mapped, size) }
        return Metrics.entries(of: UnsafeRawBufferPointer(start: mapped, count: size))
    }
}
