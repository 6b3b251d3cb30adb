public import Logging
public import SharedKitCore
public import SharedKitStores

/// Where generations are made, in order of preference: `PROVIDERS=replicate,openai` (`local`, the
/// embedded renderer, may close the list for development). Unset, the list is the providers that are
/// configured (Replicate, then OpenAI), or `local` when none is.
///
/// A job goes to the first provider in the list that is configured, can do the task and is not cooling
/// down; a provider that fails a job (down, throttling past the request's patience, a 5xx) cools down
/// for `PROVIDER_COOLDOWN_SECONDS` (30), shared through Redis by every process, and the job tries the next.
/// Providers cooling down are still tried, last, when no other is left: a lone provider is never refused
/// for a blip.
public enum ProviderName: String, Sendable, CaseIterable {
    case replicate, openai, local

    /// The tasks each provider can do. OpenAI's Images API makes and repaints images; it neither upscales
    /// nor makes videos.
    public func can(_ task: Generations.Task) -> Bool {
        switch self {
        case .replicate, .local: return true
        case .openai: return task == .image || task == .inpaint
        }
    }

    /// The name shown to users and admins.
    public var displayName: String {
        switch self {
        case .replicate: return "Replicate"
        case .openai: return "OpenAI"
        case .local: return "Atelier (embedded)"
        }
    }
}

public struct Providers: Sendable {
    public let order: [ProviderName]
    public let cooldownSeconds: Int

    public init(_ config: Config) throws {
        cooldownSeconds = try config.integer("PROVIDER_COOLDOWN_SECONDS", default: 30, range: 0...3600)
        let configured: (ProviderName) -> Bool = { name in
            switch name {
            case .replicate: return config.string("REPLICATE_API_TOKEN") != nil
            case .openai: return config.string("OPENAI_API_KEY") != nil
            case .local: return true
            }
        }
        guard let list = config.string("PROVIDERS") else {
            let available = [ProviderName.replicate, .openai].filter(configured)
            order = available.isEmpty ? [.local] : available
            return
        }
        var names: [ProviderName] = []
        for item in list.split(separator: ",") {
            let text = item.trimmingWhitespace().lowercased()
            guard let name = ProviderName(rawValue: text) else {
                throw Config.Invalid(variable: "PROVIDERS", problem: "names '\(text)'; it lists replicate, openai and local")
            }
            guard !names.contains(name) else { continue }
            names.append(name)
        }
        if let local = names.firstIndex(of: .local), local != names.count - 1 {
            throw Config.Invalid(
                variable: "PROVIDERS", problem: "must end with local when it names it (the embedded renderer closes the list)")
        }
        order = names.filter(configured)
        guard !order.isEmpty else {
            throw Config.Invalid(variable: "PROVIDERS", problem: "names no configured provider (set REPLICATE_API_TOKEN or OPENAI_API_KEY)")
        }
    }

    /// The providers to try for a task, in order: those not cooling down, then those that are, then the
    /// embedded renderer where the list ends with it (it never goes ahead of a provider). A task no listed
    /// provider can do is the embedded renderer's (an OpenAI-only deployment upscales and makes videos
    /// itself).
    public func chain(for task: Generations.Task, redis: RedisConnection, logger: Logger) -> [ProviderName] {
        let able = order.filter { $0.can(task) && $0 != .local }
        let local: [ProviderName] = able.isEmpty || order.contains(.local) ? [.local] : []
        guard able.count > 1 else { return able + local }
        let cooling = coolingDown(able, redis: redis, logger: logger)
        return able.filter { !cooling.contains($0) } + able.filter { cooling.contains($0) } + local
    }

    /// The providers among `names` cooling down now (none when Redis cannot say: every one is tried).
    public func coolingDown(_ names: [ProviderName], redis: RedisConnection, logger: Logger) -> Set<ProviderName> {
        do {
            let reply = try redis.command(["MGET"] + names.map(Self.key))
            guard case .array(let values) = reply else { return [] }
            return Set(zip(names, values).compactMap { name, value in value.isNull ? nil : name })
        } catch {
            logger.notice("provider cool-downs unknown (Redis)", metadata: ["error": .string("\(error)")])
            return []
        }
    }

    /// Records that a provider failed a job: the next jobs try others first for a while.
    public func coolDown(_ name: ProviderName, reason: String, redis: RedisConnection, logger: Logger) {
        logger.warning("provider cooling down", metadata: ["provider": .string(name.rawValue), "reason": .string(reason)])
        guard cooldownSeconds > 0 else { return }
        _ = try? redis.command("SET", Self.key(name), String(reason.prefix(200)), "EX", String(cooldownSeconds))
    }

    static func key(_ name: ProviderName) -> String { "atelier:provider-cooldown:\(name.rawValue)" }
}
