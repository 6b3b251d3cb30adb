/// A Redis reply. Error replies are thrown as `RedisError.reply` instead.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null

    public var string: String? {
        switch self {
        case .string(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        case .integer(let value): return String(value)
        default: return nil
        }
    }

    public var integer: Int? {
        switch self {
        case .integer(let value): return value
        case .string(let bytes): return Int(String(decoding: bytes, as: UTF8.self))
        default: return nil
        }
    }

    public var array: [RedisReply]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var isNull: Bool { self == .null }
}

public enum RedisError: Error, CustomStringConvertible {
    /// The server answered with an error reply (`WRONGTYPE …`, a script error …).
    case reply(String)

    public var description: String {
        switch self {
        case .reply(let message): return "Redis error reply: \(message)"
        }
    }
}

/// A Lua script run by SHA (EVALSHA), loaded on first use and again after `SCRIPT FLUSH` or a restart.
/// A class so that a connection remembers each script's SHA by identity, not by hashing its source on
/// every call; scripts are `static let`s, made once.
public final class RedisScript: Sendable {
    public let source: String

    public init(_ source: String) {
        self.source = source
    }
}
