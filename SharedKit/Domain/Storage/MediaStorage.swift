import SharedKitCore
import SharedKitRuntime
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

/// Where images and videos live. Object keys are random (≥128 bits) and never derived from user input.
public protocol MediaStorage {
    func put(_ bytes: [UInt8], key: String, contentType: String) throws
    func read(key: String) throws -> [UInt8]
    func delete(key: String) throws
    /// A URL browsers can load.
    func url(for key: String) -> String
    /// When every URL is this prefix followed by the key (files, a public bucket), the prefix: listings
    /// then write URLs without making them one by one. Nil when URLs are made per key (pre-signed).
    var urlPrefix: String? { get }
    /// When nginx can send a file itself, the internal location a function names in `X-Accel-Redirect`
    /// (followed by the key) to have it served after the function checked access. Nil: the function
    /// reads the object and answers its bytes.
    var internalRedirectPrefix: String? { get }
    /// The object for a request with `Range` (one `bytes=` range, already checked): nil when the storage
    /// does not serve ranges itself (files: nginx does).
    func read(key: String, range: String) throws -> RangedRead?
}

/// What a ranged read answered: 206 with the bytes and their `Content-Range`, 200 with the whole object
/// (the range was ignored), or 416 when the range starts past the end.
public struct RangedRead: Sendable {
    public let status: Int
    public let bytes: [UInt8]
    public let contentRange: String?

    public init(status: Int, bytes: [UInt8], contentRange: String?) {
        self.status = status
        self.bytes = bytes
        self.contentRange = contentRange
    }
}

extension MediaStorage {
    public var urlPrefix: String? { nil }
    public var internalRedirectPrefix: String? { nil }
    public func read(key: String, range: String) throws -> RangedRead? { nil }

    /// A URL a provider on the internet can fetch: the storage's own when it is absolute (S3), else
    /// `publicBaseURL` followed by the site-relative one (/media/… served by nginx).
    public func absoluteURL(for key: String, publicBaseURL: String) -> String {
        let url = url(for: key)
        return url.hasPrefix("https://") || url.hasPrefix("http://") ? url : publicBaseURL + url
    }
}

/// Files under `MEDIA_ROOT`, served by nginx under /media/.
public struct FileMediaStorage: MediaStorage {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public static func newKey(extension ext: String) -> String {
        let name = Random.hex(byteCount: 16)
        return "\(name.prefix(2))/\(name).\(ext)"
    }

    public func put(_ bytes: [UInt8], key: String, contentType: String) throws {
        try Self.validate(key)
        let path = "\(root)/\(key)"
        if let slash = key.lastIndex(of: "/") { mkdirs("\(root)/\(key[..<slash])") }
        let temporary = path + ".tmp-" + Random.hex(byteCount: 4)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DependencyUnavailable(.storage, detail: "open \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n <= 0 { break }
            written += n
        }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw DependencyUnavailable(.storage, detail: "write \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    public func read(key: String) throws -> [UInt8] {
        try Self.validate(key)
        guard let bytes = Migrator.readBytes("\(root)/\(key)") else {
            throw DependencyUnavailable(.storage, detail: "read \(key): \(String(cString: strerror(errno)))")
        }
        return bytes
    }

    public func delete(key: String) throws {
        try Self.validate(key)
        if unlink("\(root)/\(key)") != 0, errno != ENOENT {
            throw DependencyUnavailable(.storage, detail: "unlink \(key): \(String(cString: strerror(errno)))")
        }
    }

    public func url(for key: String) -> String { "/media/\(key)" }
    public var urlPrefix: String? { "/media/" }
    /// nginx.conf's `location /_atelier/media/ { internal; alias <media root>; }`.
    public var internalRedirectPrefix: String? { "/_atelier/media/" }

    /// Keys are ours, but a key that could escape the root is refused all the same.
    static func validate(_ key: String) throws {
        guard !key.isEmpty, !key.hasPrefix("/"), !key.contains(".."), !key.contains("\0") else {
            throw DependencyUnavailable(.storage, detail: "refused key")
        }
    }

    private func mkdirs(_ path: String) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            mkdir(current, 0o755)
        }
    }
}

extension Context {
    /// The configured media storage: an S3-compatible bucket when the function was started with one
    /// (`Services.start(function:media:)`), otherwise files under MEDIA_ROOT. With S3_BUCKET set, a function that
    /// cannot reach S3 refuses media work rather than writing files no other host would see.
    public var media: any MediaStorage {
        if let remote = remoteMedia { return remote }
        if config.string("S3_BUCKET") != nil { return UnreachableMediaStorage() }
        return FileMediaStorage(root: config.string("MEDIA_ROOT") ?? "\(config.runDir)/media")
    }
}

struct UnreachableMediaStorage: MediaStorage {
    func fail() -> DependencyUnavailable { DependencyUnavailable(.storage, detail: "this function was started without S3 support") }
    func put(_ bytes: [UInt8], key: String, contentType: String) throws { throw fail() }
    func read(key: String) throws -> [UInt8] { throw fail() }
    func delete(key: String) throws { throw fail() }
    func url(for key: String) -> String { "" }
}
