import Foundation
import GRDB
import GRDBSQLite
import Metering

/// A billing record as a row of `billing_records`: the one place that says which column holds which
/// field, for writing (the ledger) and reading (exports, usage). Times are microseconds since 1970,
/// money is nano-units beside its currency column.
enum BillingRecordRow {
    /// The columns a record fills, in the order of ``bind(_:to:)``.
    static let columns = [
        "id", "request_id", "tenant_id", "key_id", "started_at", "ended_at", "ttft_ms", "endpoint", "model",
        "upstream_model", "provider", "stream", "status", "http_status", "error", "prompt_tokens", "cached_tokens",
        "cache_write_tokens", "completion_tokens", "reasoning_tokens", "usage_source", "local_prompt_tokens",
        "local_completion_tokens", "local_estimate", "price_entry", "currency", "cost_nanos", "estimated_tokens",
        "estimated_cost_nanos", "free_units", "grant_units", "free_cost_nanos", "charged_nanos", "budget_currency",
        "budget_charge_nanos", "attempts", "upstream_key_id", "failed_attempts",
    ]

    /// Binds `r` to the parameters of an insert of ``columns`` in order, straight through the C API:
    /// boxing thirty-five values for GRDB cost as much as the insert itself (see `Benchmarks/NOTES.md`).
    static func bind(_ r: BillingRecord, to statement: SQLiteStatement) -> Int32 {
        var binder = Binder(statement: statement)
        binder.text(r.id)
        binder.text(r.requestID)
        binder.text(r.tenantID)
        binder.text(r.keyID)
        binder.int(SQLiteLedger.microseconds(r.startedAt))
        binder.int(SQLiteLedger.microseconds(r.endedAt))
        binder.int(r.timeToFirstTokenMs.map(Int64.init))
        binder.text(r.endpoint)
        binder.text(r.model)
        binder.text(r.upstreamModel)
        binder.text(r.provider)
        binder.int(r.stream ? 1 : 0)
        binder.text(r.status.rawValue)
        binder.int(Int64(r.httpStatus))
        binder.text(r.error)
        binder.int(Int64(r.usage.prompt))
        binder.int(Int64(r.usage.cachedPrompt))
        binder.int(Int64(r.usage.cacheWrite))
        binder.int(Int64(r.usage.completion))
        binder.int(Int64(r.usage.reasoning))
        binder.text(r.usageSource.rawValue)
        binder.int(Int64(r.localPromptTokens))
        binder.int(Int64(r.localCompletionTokens))
        binder.int(r.localIsEstimate ? 1 : 0)
        binder.text(r.priceEntry)
        binder.text(r.cost?.currency)
        binder.int(r.cost?.nanos)
        binder.int(Int64(r.estimatedTokens))
        binder.int(r.estimatedCost?.nanos)
        binder.int(r.freeUnits)
        binder.int(r.grantUnits)
        binder.int(r.freeCost?.nanos)
        binder.int(r.charged?.nanos)
        binder.text(r.budgetCharge?.currency)
        binder.int(r.budgetCharge?.nanos)
        binder.int(Int64(r.attempts))
        binder.text(r.upstreamKeyID)
        binder.text(UpstreamAttempt.encode(r.failedAttempts))
        return binder.result
    }

    /// Binds an outbox entry (record id, sink, due and written at `now`) to `outboxSQL`.
    static func bindOutbox(recordID: String, sink: String, now: Int64, to statement: SQLiteStatement) -> Int32 {
        var binder = Binder(statement: statement)
        binder.text(recordID)
        binder.text(sink)
        binder.int(now)
        binder.int(now)
        return binder.result
    }

    static let outboxSQL =
        "INSERT OR IGNORE INTO billing_outbox (record_id, sink, next_attempt_at, created_at) VALUES (?, ?, ?, ?)"

    private struct Binder {
        let statement: SQLiteStatement
        var index: Int32 = 1
        var result = SQLITE_OK
        /// SQLite copies the bytes before the call returns.
        static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

        mutating func text(_ value: String?) {
            guard var value else { return null() }
            let rc = value.withUTF8 { utf8 in
                // An empty buffer may have no address, which SQLite would bind as NULL.
                guard let base = utf8.baseAddress, !utf8.isEmpty else {
                    return sqlite3_bind_text(statement, index, "", 0, Self.transient)
                }
                return sqlite3_bind_text(statement, index, base, Int32(utf8.count), Self.transient)
            }
            next(rc)
        }

        mutating func int(_ value: Int64?) {
            guard let value else { return null() }
            next(sqlite3_bind_int64(statement, index, value))
        }

        private mutating func null() { next(sqlite3_bind_null(statement, index)) }

        private mutating func next(_ rc: Int32) {
            if result == SQLITE_OK { result = rc }
            index += 1
        }
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
        record.attempts = row["attempts"] ?? 1
        record.upstreamKeyID = row["upstream_key_id"]
        record.failedAttempts = UpstreamAttempt.decode(row["failed_attempts"])
        return record
    }
}
