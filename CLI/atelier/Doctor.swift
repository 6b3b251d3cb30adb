import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitRuntime
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

/// `atelier doctor [--json]`: checks every configured integration against the real service and says,
/// one line each, that it works or what is wrong and how to fix it. Exits 1 when a check fails, so a
/// monitor can run it; `make run` prints it at start without ever failing the start.
enum Doctor {
    struct Finding {
        enum Status: String { case ok, fail, skip }
        let check: String
        let status: Status
        let detail: String
    }

    static func main(json: Bool) -> Int32 {
        let findings = run()
        if json {
            let report = JSONValue.object([
                "ok": .bool(!findings.contains { $0.status == .fail }),
                "checks": .array(
                    findings.map { finding in
                        .object([
                            "check": .string(finding.check), "status": .string(finding.status.rawValue), "detail": .string(finding.detail),
                        ])
                    }),
            ])
            print(String(decoding: JSONWriter.bytes(of: report), as: UTF8.self))
        } else {
            for finding in findings {
                let mark = finding.status == .ok ? "ok  " : finding.status == .fail ? "FAIL" : "skip"
                print("doctor: \(mark) \(finding.check): \(finding.detail)")
            }
        }
        return findings.contains { $0.status == .fail } ? 1 : 0
    }

    static func run() -> [Finding] {
        let config: Config
        do { config = try Config.fromProcess() } catch {
            return [Finding(check: "configuration", status: .fail, detail: "\(error)")]
        }
        var findings: [Finding] = []
        func add(_ check: String, _ problem: String?, ok: String) {
            findings.append(Finding(check: check, status: problem == nil ? .ok : .fail, detail: problem ?? ok))
        }
        func skip(_ check: String, _ why: String) { findings.append(Finding(check: check, status: .skip, detail: why)) }

        // PostgreSQL: reachable, every migration applied.
        let db = PostgresConnection(url: config.databaseURL, timeoutMs: 5000, prepareStatements: config.preparedStatements)
        do {
            let applied = try db.query("SELECT count(*)::int AS n FROM schema_migrations").first?.get("n", as: Int.self) ?? 0
            let folder = config.string("MIGRATIONS_DIR") ?? "Migrations"
            let files = (try? Migrator.load(folder: folder).count) ?? applied
            add(
                "postgresql", files > applied ? "\(files - applied) migration(s) not applied: run `atelier migrate`" : nil,
                ok: "reachable, \(applied) migrations applied")
        } catch {
            add("postgresql", "not reachable at DATABASE_URL: \(error)", ok: "")
        }

        // Redis: reachable; evicting keys would drop sessions and rate limits.
        let redis = RedisConnection(url: config.redisURL, timeoutMs: 5000)
        do {
            let reply = try redis.command("CONFIG", "GET", "maxmemory-policy")
            var policy: String?
            if case .array(let items) = reply, items.count == 2 { policy = items[1].string }
            add(
                "redis",
                policy.map {
                    $0 == "noeviction"
                        ? nil : "maxmemory-policy is \($0): set it to noeviction, or sessions and limits vanish under memory pressure"
                } ?? nil,
                ok: policy == nil ? "reachable (its maxmemory-policy could not be read)" : "reachable, maxmemory-policy noeviction")
        } catch {
            add("redis", "not reachable at REDIS_URL: \(error)", ok: "")
        }

        // The public URL providers call back.
        let replicate = ReplicateClient(config)
        let billing = try? BillingConfig(config: config)
        let callbacks = replicate != nil || billing?.paymentsConfigured == true
        let base = config.publicBaseURL
        let host = base.split(separator: "/").dropFirst().first.map { String($0.split(separator: ":").first ?? "") } ?? ""
        let local =
            host == "localhost" || host.hasPrefix("127.") || host.hasPrefix("10.") || host.hasPrefix("192.168.")
            || host.hasSuffix(".local") || host.hasSuffix(".test") || host == "[::1]"
        if !callbacks {
            skip("public url", "\(base): no provider calls back (Replicate and Razorpay are not configured)")
        } else if local {
            add(
                "public url",
                "\(base) is not reachable from the internet: Replicate and Razorpay cannot deliver webhooks to \(base)/hooks/…; set PUBLIC_BASE_URL to the public https address",
                ok: "")
        } else {
            add(
                "public url", base.hasPrefix("https://") ? nil : "\(base) is not https: providers' webhooks and sessions need TLS",
                ok: "\(base), webhooks at \(base)/hooks/replicate and \(base)/hooks/razorpay")
        }

        // Replicate: the token, each model, the webhook secret's form.
        if let replicate {
            add("replicate token", replicate.accountProblem(), ok: "accepted")
            let models = replicate.models
            for model in Set([models.image, models.upscale, models.inpaint, models.video, models.enhance]).sorted() {
                add("replicate model", replicate.modelProblem(model), ok: "\(model) exists")
            }
            let secret = config.string("REPLICATE_WEBHOOK_SECRET") ?? ""
            let key = secret.hasPrefix("whsec_") ? Encoding.fromBase64(String(secret.dropFirst(6))) : nil
            add(
                "replicate webhook secret",
                key.map { $0.isEmpty ? "is empty after whsec_" : nil }
                    ?? (secret.isEmpty
                        ? "REPLICATE_WEBHOOK_SECRET is not set: every webhook will be refused (GET /v1/webhooks/default/secret gives it)"
                        : "REPLICATE_WEBHOOK_SECRET does not have the form whsec_<base64>"),
                ok: "has the whsec_ form")
        } else {
            skip("replicate", "not configured")
        }

        // OpenAI (or a server speaking its API): the key, and the provider order.
        if let openai = OpenAIClient(config) {
            add("openai key", openai.accountProblem(), ok: "accepted")
        } else {
            skip("openai", "not configured")
        }
        do {
            let providers = try Providers(config)
            add("providers", nil, ok: providers.order.map(\.displayName).joined(separator: " → "))
        } catch {
            add("providers", "\(error)", ok: "")
        }

        // Razorpay: the keys and the plan, and that users are shown its price.
        if let billing, billing.paymentsConfigured, let client = RazorpayClient(billing) {
            do {
                let plan = try client.fetchPlan(billing.plan.id)
                let mismatch = plan.item.amount != billing.plan.price || plan.item.currency != billing.plan.currency
                add(
                    "razorpay",
                    mismatch
                        ? "plan \(plan.id) charges \(plan.item.amount) \(plan.item.currency) but PLAN_PRICE/PLAN_CURRENCY say \(billing.plan.price) \(billing.plan.currency): users are shown Razorpay's; set them to match"
                        : nil,
                    ok:
                        "keys accepted, plan \(plan.id) charges \(plan.item.amount) \(plan.item.currency) per \(BillingConfig.Plan.period(plan.period, interval: plan.interval))"
                )
            } catch let error as HTTPError {
                add("razorpay", "\(error.message) (RAZORPAY_KEY_ID/SECRET and RAZORPAY_PLAN_ID)", ok: "")
            } catch {
                add("razorpay", "\(error)", ok: "")
            }
            if billing.webhookSecret == nil {
                add("razorpay webhook secret", "RAZORPAY_WEBHOOK_SECRET is not set: every webhook will be refused", ok: "")
            }
        } else {
            skip("razorpay", "not configured: premium can only be granted by an admin")
        }

        // Mail.
        if let smtp = Mailers.smtp(config) {
            do {
                try smtp.check()
                add("smtp", nil, ok: "connects, TLS as required, credentials accepted (nothing sent)")
            } catch {
                add("smtp", "\(error)", ok: "")
            }
        } else {
            skip("smtp", "SMTP_URL is not set: mail is written to \(config.runDir)/outbox/")
        }

        // Media.
        if config.string("S3_BUCKET") != nil {
            add("media", s3Problem(config), ok: "S3: an object was written, read back through the URL browsers get, and deleted")
        } else {
            let folder = config.string("MEDIA_ROOT") ?? "\(config.runDir)/media"
            add("media", access(folder, W_OK) == 0 ? nil : "\(folder) is not writable", ok: "\(folder) is writable")
        }
        return findings
    }

    /// S3 media: a small object written, read without credentials through the URL browsers are given
    /// (public or pre-signed), and deleted. nil when all of it works, else what failed and what to check.
    static func s3Problem(_ config: Config) -> String? {
        let storage: S3MediaStorage
        do {
            guard let configured = try S3MediaStorage(config: config) else { return "S3_BUCKET is empty" }
            storage = configured
        } catch {
            return "\(error)"
        }
        let key = FileMediaStorage.newKey(extension: "txt")
        let bytes = Array("atelier doctor \(key)".utf8)
        do {
            try storage.put(bytes, key: key, contentType: "text/plain")
        } catch {
            return
                "could not write to bucket \(storage.bucket) at \(storage.endpoint) (\(error)): check S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION and that the bucket exists"
        }
        let readProblem = s3ReadProblem(storage, key: key, expecting: bytes)
        // Deleted whatever the read showed: the check leaves nothing behind.
        do {
            try storage.delete(key: key)
        } catch {
            return readProblem
                ?? "could not delete from bucket \(storage.bucket) (\(error)): users' deletions would fail; check the key's permissions"
        }
        return readProblem
    }

    /// The object read back with no credentials through the URL browsers are given; nil when it is.
    static func s3ReadProblem(_ storage: S3MediaStorage, key: String, expecting bytes: [UInt8]) -> String? {
        let url = storage.url(for: key)
        let shown = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        do {
            let response = try HTTPClient(connectTimeoutMs: 3000, timeoutMs: 10_000, maxResponseBytes: 1 << 16).send(
                method: "GET", url: url)
            guard response.status == 200, response.body == bytes else {
                return storage.publicURL == nil
                    ? "an object was written but its pre-signed URL answered HTTP \(response.status) (\(shown)): check S3_REGION and the server's clock"
                    : "an object was written but browsers cannot read it at \(shown) (HTTP \(response.status)): make reads public there, or unset S3_PUBLIC_URL to use pre-signed URLs"
            }
            return nil
        } catch {
            return "an object was written but \(shown) could not be fetched (\(error)): browsers will not see media"
        }
    }
}
