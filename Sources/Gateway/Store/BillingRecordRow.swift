import Foundation
import GRDB
import Metering

/// A billing record as a row of `billing_records`: the one place that says which column holds which
/// field, for writing (the ledger) and reading (exports, usage). Times are microseconds since 1970,
/// money is nano-units beside its currency column.
enum BillingRecordRow {
    /// The columns a record fills, in the order of ``values(_:)``.
    static let columns = [
        "id", "request_id", "tenant_id", "key_id", "started_at", "ended_at", "ttft_ms", "endpoint", "model",
        "upstream_model", "provider", "stream", "status", "http_status", "error", "prompt_tokens", "cached_tokens",
        "cache_write_tokens", "completion_tokens", "reasoning_tokens", "usage_source", "local_prompt_tokens",
        "local_completion_tokens", "local_estimate", "price_entry", "currency", "cost_nanos", "estimated_tokens",
        "estimated_cost_nanos", "free_units", "grant_units", "free_cost_nanos", "charged_nanos", "budget_currency",
        "budget_charge_nanos",
    ]

    static func values(_ r: BillingRecord) -> [(any DatabaseValueConvertible)?] {
        [
            r.id, r.requestID, r.tenantID, r.keyID, SQLiteLedger.microseconds(r.startedAt),
            SQLiteLedger.microseconds(r.endedAt), r.timeToFirstTokenMs, r.endpoint, r.model, r.upstreamModel,
            r.provider, r.stream, r.status.rawValue, r.httpStatus, r.error, r.usage.prompt, r.usage.cachedPrompt,
            r.usage.cacheWrite, r.usage.completion, r.usage.reasoning, r.usageSource.rawValue, r.localPromptTokens,
            r.localCompletionTokens, r.localIsEstimate, r.priceEntry, r.cost?.currency, r.cost?.nanos,
            r.estimatedTokens, r.estimatedCost?.nanos, r.freeUnits, r.grantUnits, r.freeCost?.nanos, r.charged?.nanos,
            r.budgetCharge?.currency, r.budgetCharge?.nanos,
        ]
    }

    static func record(_ row: Row) -> BillingRecord {
        func date(_ column: String) -> Date {
            Date(timeIntervalSince1970: Double(row[column] as Int64) / 1_000_000)
        }
        let currency: String? = row["currency"]
        func money(_ column: String, _ currency: String?) -> Money? {
            guard let currency, let n = row[column] as Int64? else { return nil }
            return Money(nanos: n, currency: currency)
        }
        var record = BillingRecord(
            id: row["id"], requestID: row["request_id"], tenantID: row["tenant_id"], keyID: row["key_id"],
            startedAt: date("started_at"), endedAt: date("ended_at"), timeToFirstTokenMs: row["ttft_ms"],
            endpoint: row["endpoint"], model: row["model"], upstreamModel: row["upstream_model"],
            provider: row["provider"], stream: row["stream"],
            status: BillingRecord.Status(rawValue: row["status"]) ?? .rejected, httpStatus: row["http_status"],
            error: row["error"],
            usage: Usage(
                prompt: row["prompt_tokens"], completion: row["completion_tokens"], cachedPrompt: row["cached_tokens"],
                cacheWrite: row["cache_write_tokens"], reasoning: row["reasoning_tokens"]),
            usageSource: BillingRecord.UsageSource(rawValue: row["usage_source"]) ?? .none,
            localPromptTokens: row["local_prompt_tokens"], localCompletionTokens: row["local_completion_tokens"],
            localIsEstimate: row["local_estimate"], priceEntry: row["price_entry"],
            cost: money("cost_nanos", currency))
        record.estimatedTokens = row["estimated_tokens"]
        record.estimatedCost = money("estimated_cost_nanos", currency)
        record.freeUnits = row["free_units"]
        record.grantUnits = row["grant_units"]
        record.freeCost = money("free_cost_nanos", currency)
        record.charged = money("charged_nanos", currency)
        record.budgetCharge = money("budget_charge_nanos", row["budget_currency"])
        return record
    }
}
