import Logging
import SharedKit
import SharedKitCore
import SharedKitHTTP
import SharedKitMedia
import SharedKitStores

#if canImport(Glibc)
import Glibc
#endif

enum Maintenance {

    static func run(_ context: Context) -> Int32 {
        do {
            let reconcileAfter = try context.config.integer("RECONCILE_AFTER_SECONDS", default: 180, range: 0...86_400)
            let timeouts = try OpenJobs.Timeouts(context.config)
            // One run at a time; provider calls happen between short transactions, holding no row locks.
            let result = try RunLock(db: context.db, name: "maintenance-cron").run { lease in
                try work(context, lease, reconcileAfter: reconcileAfter, timeouts: timeouts)
            }
            // Completion webhooks under a lock of their own: slow receivers never hold up refunds and
            // reconciliation (due first attempts the ending request did not make, and retries; a month is
            // kept for the users' lists).
            let deliveries = try RunLock(db: context.db, name: "completion-webhooks").run { lease -> [String: Int] in
                let outcomes = try WebhookDelivery(context).deliverDue(limit: 200) { try lease.extend() }
                try context.db.execute("DELETE FROM completion_webhooks WHERE created_at < now() - interval '30 days'")
                return [
                    "webhooks_delivered": outcomes.filter { $0 == .delivered }.count,
                    "webhooks_not_delivered": outcomes.filter { $0 != .delivered }.count,
                ]
            }
            guard var summary = result else {
                context.logger.info("maintenance skipped: another run holds the lock")
                return 0
            }
            summary.merge(deliveries ?? [:]) { $1 }
            context.logger.info("maintenance done", metadata: summary.mapValues { .stringConvertible($0) })
            print("maintenance: " + summary.keys.sorted().map { "\($0)=\(summary[$0]!)" }.joined(separator: " "))
            return 0
        } catch {
            context.logger.error("maintenance failed", metadata: ["error": .string("\(error)")])
            return 1
        }
    }

    /// Every change it makes is itself guarded (and transactional where it spans rows), so a crash midway
    /// leaves nothing half-done and the next run picks up.
    static func work(_ context: Context, _ lease: RunLock, reconcileAfter: Int, timeouts: OpenJobs.Timeouts) throws -> [String: Int] {
        var summary = [
            "started": 0, "reconciled": 0, "adopted": 0, "copied": 0, "timed_out": 0, "codes_deleted": 0, "pending_sign_ups_deleted": 0,
        ]
        // This host's metrics files of exited processes are folded into its retired counts, so the folder
        // stays small even where nothing scrapes /metrics.
        _ = MetricsDirectory.collect(context.config.metricsDir)
        summary["codes_deleted"] = try context.db.execute("DELETE FROM email_codes WHERE expires_at < now() - interval '1 day'")
        // The webhook log keeps a week, and at most 10,000 deliveries.
        try context.db.execute(
            """
            DELETE FROM webhook_deliveries WHERE received_at < now() - interval '7 days'
               OR id <= (SELECT id FROM webhook_deliveries ORDER BY id DESC OFFSET 10000 LIMIT 1)
            """)
        // A sign-up never confirmed within a day goes, and with it the username it was holding.
        summary["pending_sign_ups_deleted"] = try context.db.execute(
            """
            DELETE FROM users WHERE NOT verified AND created_at < now() - interval '1 day'
              AND NOT EXISTS (SELECT 1 FROM email_codes c WHERE c.email = users.email AND c.expires_at > now())
            """)
        // OpenAI jobs whose worker went away (a redeploy, a crash) before the image came: nothing else would
        // end them before their timeout, so they are failed and refunded once past OpenAI's own.
        let openAIPatience = try OpenAIClient.timeoutSeconds(context.config) + 60
        let abandoned = try context.db.query(
            """
            SELECT id FROM generations
            WHERE provider = 'openai' AND status IN \(GenerationStatus.sql(GenerationStatus.open))
              AND updated_at < now() - make_interval(secs => \(openAIPatience)) ORDER BY created_at LIMIT 100
            """)
        let jobs = GenerationJobs(context)
        for row in abandoned.rows {
            try jobs.giveUp(
                try row.get("id"), message: "The provider did not finish the job; your quota was refunded. Please try again.")
        }
        summary["openai_abandoned"] = abandoned.rows.count
        let open = OpenJobs(context)
        guard open.replicate != nil else {
            // The embedded provider finishes inside the request; only orphans (a crash mid-request) remain.
            summary["timed_out"] = try failStale(context, open, timeouts: timeouts)
            return summary
        }
        /// Each job's step by itself: one that fails is logged and the others still go.
        func reconcile(_ query: SQLQuery, counting counted: OpenJobs.Step, as name: String, stopAt stop: OpenJobs.Step? = nil) throws {
            for row in try context.db.query(query).rows {
                let id: GenerationID = try row.get("id")
                try lease.extend()
                do {
                    let step = try open.reconcile(id)
                    if step == counted { summary[name, default: 0] += 1 }
                    if step == stop { break }
                } catch {
                    context.logger.error("reconcile failed", metadata: ["generation.id": .string(id.text), "error": .string("\(error)")])
                }
            }
        }
        // Outputs that could not be copied yet.
        try reconcile(
            """
            SELECT id FROM generations WHERE provider = 'replicate' AND status = 'running' AND pending_outputs IS NOT NULL
            ORDER BY created_at LIMIT 100
            """, counting: .copied, as: "copied")
        // Jobs whose final webhook has not come: ask the provider.
        try reconcile(
            """
            SELECT id FROM generations
            WHERE provider = 'replicate' AND status IN \(GenerationStatus.sql(GenerationStatus.open)) AND pending_outputs IS NULL AND provider_id IS NOT NULL
              AND updated_at < now() - make_interval(secs => \(reconcileAfter))
            ORDER BY created_at LIMIT 100
            """, counting: .checked, as: "reconciled")
        // Jobs Replicate throttled at creation: start them now, oldest first, until it throttles again.
        try reconcile(
            """
            SELECT id FROM generations
            WHERE provider = 'replicate' AND status = 'queued' AND provider_id IS NULL AND deferred_start IS NOT NULL
            ORDER BY created_at LIMIT 20
            """, counting: .started, as: "started", stopAt: .throttled)
        // Jobs whose create answer was lost (no provider id): look for the prediction that names them.
        try reconcile(
            """
            SELECT id FROM generations
            WHERE provider = 'replicate' AND status = 'queued' AND provider_id IS NULL AND deferred_start IS NULL
              AND updated_at < now() - make_interval(secs => \(reconcileAfter))
            ORDER BY created_at LIMIT 20
            """, counting: .adopted, as: "adopted")
        summary["timed_out"] = try failStale(context, open, timeouts: timeouts)
        return summary
    }

    /// Cancels (at the provider) and fails jobs past their timeout, refunding each once.
    static func failStale(_ context: Context, _ open: OpenJobs, timeouts: OpenJobs.Timeouts) throws -> Int {
        let stale = try context.db.query(
            """
            SELECT id, provider_id, input->>'mask_key' AS mask_key FROM generations
            WHERE status IN \(GenerationStatus.sql(GenerationStatus.open))
              AND created_at < now() - make_interval(secs => CASE WHEN task = 'video' THEN \(timeouts.video)::integer ELSE \(timeouts.image)::integer END)
            ORDER BY created_at LIMIT 100
            """)
        for row in stale.rows {
            try open.timeOut(try row.get("id"), providerID: try row.get("provider_id"), maskKey: try row.get("mask_key"))
        }
        return stale.rows.count
    }
}
