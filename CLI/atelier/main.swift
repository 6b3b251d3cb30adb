#if canImport(Glibc)
import Glibc
#endif
import SharedKit

// The operator CLI: `atelier <command> [options]`. Each command exits 0 on success and non-zero with one
// line on stderr otherwise.
let arguments = Array(CommandLine.arguments.dropFirst())
let commands: [String: ([String]) throws -> Int32] = [
    "migrate": Commands.migrate,
    "create-admin": AdminCommands.createAdmin,
    "grant-premium": AdminCommands.grantPremium,
    "revoke-sessions": AdminCommands.revokeSessions,
    "delete-user": AdminCommands.deleteUser,
    "supervise": Supervisor.main,
    "doctor": Doctor.main,
    "media-origin": Commands.mediaOrigin,
    "metrics": Commands.metrics,
]

guard let name = arguments.first, let command = commands[name] else {
    Commands.printUsage()
    exit(64)
}
do {
    exit(try command(Array(arguments.dropFirst())))
} catch {
    Commands.fail("\(name): \(error)")
}
