import SharedKitCore
public import SharedKitRuntime
import SharedKitStores

/// The admins' webhook log: each delivery to a provider's webhook with its outcome, written after the
/// handler has decided (never in its transaction, never able to fail the delivery).
public enum WebhookLog {
    /// Runs `handler` and records what came of it: `accepted`, `duplicate` or a finer reason for a refusal
    /// (`stale_timestamp` …) when the handler sets its argument, else the refusal's error code
    /// (`invalid_signature`, `invalid_json`, `unknown_prediction` …), or the dependency that was down.
    public static func recording(
        _ provider: String, _ context: Context,
        _ handler: (inout String) throws -> Response
    ) throws -> Response {
        var outcome = "accepted"
        do {
            let response = try handler(&outcome)
            record(provider, outcome, status: response.status.code, context)
            return response
        } catch let error as any HTTPErrorConvertible {
            // An HTTP answer, a dependency that is down (503, `<dependency>_unavailable`) or a store's refusal.
            let answer = error.httpError
            record(provider, outcome != "accepted" ? outcome : answer.code, status: answer.status.code, context)
            throw error
        } catch {
            record(provider, "failed", status: 500, context)
            throw error
        }
    }

    static func record(_ provider: String, _ outcome: String, status: Int, _ context: Context) {
        context.metrics.count("atelier_webhook_deliveries_total", ["provider": provider, "outcome": outcome])
        _ = try? context.db.execute(
            """
            INSERT INTO webhook_deliveries (provider, outcome, status) VALUES (\(provider), \(outcome), \(status))
            """)
    }
}
