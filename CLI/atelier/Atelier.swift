import ArgumentParser
import SharedKit
import SharedKitCore

/// The operator CLI: `atelier <command> [options]`. Each command exits 0 on success; a failure is one line
/// on stderr and status 1, a usage mistake (an unknown flag, a missing option) status 64 with the usage.
@main
struct Atelier: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "atelier",
        abstract: "Operate Atelier: migrations, accounts, checks, metrics and the function supervisor.",
        discussion: "Commands read the same environment as the functions (DATABASE_URL, REDIS_URL, …).",
        subcommands: [
            Migrate.self, CreateAdmin.self, GrantPremium.self, RevokeSessions.self, DeleteUser.self,
            DoctorCommand.self, MediaOrigin.self, MetricsCommand.self, Supervise.self,
        ])
}

/// Runs a command's work: its status, or one line on stderr and status 1 when it throws.
func perform(_ name: String, _ work: () throws -> Int32) throws {
    let status: Int32
    do { status = try work() } catch { Commands.fail("\(name): \(error)") }
    if status != 0 { throw ExitCode(status) }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations (DATABASE_URL).")
    @Option(help: "The folder of numbered SQL files (default: MIGRATIONS_DIR, else ./Migrations).") var dir: String?
    func run() throws { try perform("migrate") { try Commands.migrate(dir: dir) } }
}

struct CreateAdmin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create (or promote) an admin.",
        discussion: "A password piped on stdin is used; otherwise one is generated and printed once. Audited with the actor \"cli\".")
    @Option(help: "The admin's email.") var email: String
    func run() throws { try perform("create-admin") { try AdminCommands.createAdmin(email: email) } }
}

struct GrantPremium: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Grant (or revoke) premium without a subscription (audited).")
    @Option(help: "The account's email.") var email: String
    @Option(help: "The last day of premium (YYYY-MM-DD), or none to revoke it.") var until: String
    func run() throws { try perform("grant-premium") { try AdminCommands.grantPremium(email: email, until: until) } }
}

struct RevokeSessions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Log a user out everywhere (audited).")
    @Option(help: "The account's email.") var email: String
    func run() throws { try perform("revoke-sessions") { try AdminCommands.revokeSessions(email: email) } }
}

struct DeleteUser: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete an account and everything it owns (audited).")
    @Option(help: "The account's email.") var email: String
    func run() throws { try perform("delete-user") { try AdminCommands.deleteUser(email: email) } }
}

struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Check every configured integration (database, Redis, public URL, Replicate, Razorpay, SMTP, media).",
        discussion: "Says, one line each, that it works or what is wrong; exits 1 when a check fails.")
    @Flag(help: "Write the report as JSON, for monitoring.") var json = false
    func run() throws { try perform("doctor") { Doctor.main(json: json) } }
}

struct MediaOrigin: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "media-origin",
        abstract: "Print where browsers load media from when it is not this site (S3), for nginx.conf's $atelier_media_origin.")
    func run() throws { try perform("media-origin") { try Commands.mediaOrigin() } }
}

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract:
            "Print this host's counters (METRICS_DIR) in Prometheus' text format, as /metrics serves them without the database gauges.")
    func run() throws { try perform("metrics") { Commands.metrics() } }
}

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run each function under FastCGI, and the cron functions on a timer.",
        discussion: """
            Each function keeps MIN resident processes (restarted when they die) and starts up to MAX on demand, \
            which exit after IDLE seconds unused (name=N: N resident).
            """)
    @Option(help: "The folder of the functions' sockets.") var sockets: String
    @Option(help: "The folder of the function binaries.") var bin: String
    @Option(help: "name=MIN:MAX:IDLE (or name=N), comma-separated.") var functions: String
    @Option(help: "Cron functions as name=SECONDS, comma-separated.") var cron: String = ""
    @Option(help: "The folder of the functions' logs (default: the sockets folder).") var logs: String?
    @Option(help: "The file naming functions to restart one process at a time (default: <sockets>/reload).") var control: String?
    func run() throws {
        try perform("supervise") {
            try Supervisor.main(sockets: sockets, bin: bin, functions: functions, cron: cron, logs: logs, control: control)
        }
    }
}
