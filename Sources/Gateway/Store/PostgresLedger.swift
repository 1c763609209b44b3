import Foundation
import Logging
import Metering
import PostgresNIO
import Synchronization

/// A billing record as a row of the PostgreSQL `billing_records` table: the columns of
/// ``BillingRecordRow``, bound and read with PostgresNIO.
enum PostgresBillingRow {
    static func bind(_ r: BillingRecord, into binds: inout PostgresBindings) {
        binds.append(r.id)
        binds.append(r.requestID)
        binds.append(r.tenantID)
        binds.append(r.keyID)
        binds.append(SQLiteLedger.microseconds(r.startedAt))
        binds.append(SQLiteLedger.microseconds(r.endedAt))
        binds.append(r.timeToFirstTokenMs.map(Int64.init))
        binds.append(r.endpoint)
        binds.append(r.model)
        binds.append(r.upstreamModel)
        binds.append(r.provider)
        binds.append(r.stream)
        binds.append(r.status.rawValue)
        binds.append(Int32(clamping: r.httpStatus))
        binds.append(r.error)
        binds.append(Int64(r.usage.prompt))
        binds.append(Int64(r.usage.cachedPrompt))
        binds.append(Int64(r.usage.cacheWrite))
        binds.append(Int64(r.usage.completion))
        binds.append(Int64(r.usage.reasoning))
        binds.append(r.usageSource.rawValue)
        binds.append(Int64(r.localPromptTokens))
        binds.append(Int64(r.localCompletionTokens))
        binds.append(r.localIsEstimate)
        binds.append(r.priceEntry)
        binds.append(r.cost?.currency)
        binds.append(r.cost?.nanos)
        binds.append(Int64(r.estimatedTokens))
        binds.append(r.estimatedCost?.nanos)
        binds.append(r.freeUnits)
        binds.append(r.grantUnits)
        binds.append(r.freeCost?.nanos)
        binds.append(r.charged?.nanos)
        binds.append(r.budgetCharge?.currency)
        binds.append(r.budgetCharge?.nanos)
        binds.append(Int32(clamping: r.attempts))
        binds.append(r.upstreamKeyID)
        binds.append(UpstreamAttempt.encode(r.failedAttempts))
    }

    static func record(_ row: PostgresRow) throws -> BillingRecord {
        let r = row.makeRandomAccess()
        func date(_ column: String) throws -> Date {
            Date(timeIntervalSince1970: Double(try r[column].decode(Int64.self)) / 1_000_000)
        }
        let currency = try r["currency"].decode(String?.self)
        func money(_ column: String, _ currency: String?) throws -> Money? {
            guard let currency, let n = try r[column].decode(Int64?.self) else { return nil }
            return Money(nanos: n, currency: currency)
        }
        var record = BillingRecord(
            id: try r["id"].decode(String.self), requestID: try r["request_id"].decode(String.self),
            tenantID: try r["tenant_id"].decode(String.self), keyID: try r["key_id"].decode(String.self),
            startedAt: try date("started_at"), endedAt: try date("ended_at"),
            timeToFirstTokenMs: try r["ttft_ms"].decode(Int?.self), endpoint: try r["endpoint"].decode(String.self),
            model: try r["model"].decode(String.self), upstreamModel: try r["upstream_model"].decode(String.self),
            provider: try r["provider"].decode(String.self), stream: try r["stream"].decode(Bool.self),
            status: BillingRecord.Status(rawValue: try r["status"].decode(String.self)) ?? .rejected,
            httpStatus: try r["http_status"].decode(Int.self), error: try r["error"].decode(String?.self),
            usage: Usage(
                prompt: try r["prompt_tokens"].decode(Int.self),
                completion: try r["completion_tokens"].decode(Int.self),
                cachedPrompt: try r["cached_tokens"].decode(Int.self),
                cacheWrite: try r["cache_write_tokens"].decode(Int.self),
                reasoning: try r["reasoning_tokens"].decode(Int.self)),
            usageSource: BillingRecord.UsageSource(rawValue: try r["usage_source"].decode(String.self)) ?? .none,
            localPromptTokens: try r["local_prompt_tokens"].decode(Int.self),
            localCompletionTokens: try r["local_completion_tokens"].decode(Int.self),
            localIsEstimate: try r["local_estimate"].decode(Bool.self),
            priceEntry: try r["price_entry"].decode(String?.self), cost: try money("cost_nanos", currency))
        record.estimatedTokens = try r["estimated_tokens"].decode(Int.self)
        record.estimatedCost = try money("estimated_cost_nanos", currency)
        record.freeUnits = try r["free_units"].decode(Int64.self)
        record.grantUnits = try r["grant_units"].decode(Int64.self)
        record.freeCost = try money("free_cost_nanos", currency)
        record.charged = try money("charged_nanos", currency)
        record.budgetCharge = try money("budget_charge_nanos", try r["budget_currency"].decode(String?.self))
        record.attempts = Int(try r["attempts"].decode(Int32.self))
        record.upstreamKeyID = try r["upstream_key_id"].decode(String?.self)
        record.failedAttempts = UpstreamAttempt.decode(try r["failed_attempts"].decode(String?.self))
        return record
    }
}

/// The billing ledger in PostgreSQL: `append` returns once the record is committed; concurrent records
/// share commits (``GroupCommit``), each one multi-row insert. A record already stored (a retried batch)
/// is not stored, or settled, twice.
///
/// A record that settles a reservation is stored in the same transaction that settles it against the
/// shared counters (``PostgresPolicyStore``), so counters and records always agree.
public final class PostgresLedger: Ledger {
    typealias Settled = (record: BillingRecord, split: ChargeSplit?)

    private let group: GroupCommit<PostgresPolicyStore.Settling, Settled>
    let policy: PostgresPolicyStore
    /// Rows per insert: PostgreSQL takes at most 65,535 parameters in one statement.
    static let batchLimit = 1_000

    /// `sinks`: the billing sinks each record gets a delivery entry for, in its own commit.
    public init(
        store: PostgresStore, reservationTTL: TimeInterval = 3600, sinks: [String] = [],
        onCommit: @escaping @Sendable (SQLiteLedger.CommitStats) -> Void = { _ in }
    ) {
        policy = PostgresPolicyStore(store: store, reservationTTL: reservationTTL)
        group = GroupCommit(batchLimit: Self.batchLimit, onCommit: onCommit) { items, attempt in
            try await Self.commit(items, retried: attempt > 0, sinks: sinks, into: store)
        }
    }

    public var queueDepth: Int { group.queueDepth }

    public func append(_ record: BillingRecord) async throws {
        _ = try await group.append(.init(record: record, reservation: nil, convert: { _, _ in nil }))
    }

    /// Settles `reservation` against the shared counters and stores the record, in one transaction;
    /// returns the record with its free and paid split, and the split.
    func append(
        _ record: BillingRecord, settling reservation: Reservation?,
        convert: @escaping @Sendable (Money, String) -> Money?
    ) async throws -> Settled {
        try await group.append(.init(record: record, reservation: reservation, convert: convert))
    }

    static func commit(
        _ items: [PostgresPolicyStore.Settling], retried: Bool, sinks: [String] = [], into store: PostgresStore
    ) async throws -> [Settled] {
        guard items.contains(where: { ($0.reservation?.id ?? 0) != 0 }) else {
            // No shared counter to settle: one statement, no transaction (a record already stored, in a
            // retried batch, is skipped). A reservation held nowhere still gets its split.
            let settled = items.map { item -> Settled in
                guard let reservation = item.reservation else { return (item.record, nil) }
                var engine = PolicyEngine()
                var record = item.record
                let split = engine.settle(reservation, actual: record.usage, cost: record.cost, convert: item.convert)
                record.apply(split)
                return (record, split)
            }
            _ = try await store.client.query(
                insertQuery(settled.map(\.record), skippingStored: true, sinks: sinks), logger: store.logger)
            return settled
        }
        return try await store.inTransaction { connection in
            try await PostgresPolicyStore.settleAndInsert(items, retried: retried, sinks: sinks, on: connection).map {
                ($0.0, $0.1)
            }
        }
    }

    /// One multi-row insert of `records`; with `skippingStored`, a record already stored is skipped. With
    /// `sinks`, each record inserted gets its delivery entries in the same statement.
    static func insertQuery(_ records: [BillingRecord], skippingStored: Bool, sinks: [String] = []) -> PostgresQuery {
        let width = BillingRecordRow.columns.count
        var query = PostgresQuery(unsafeSQL: "")
        var rows: [String] = []
        rows.reserveCapacity(records.count)
        for (i, record) in records.enumerated() {
            PostgresBillingRow.bind(record, into: &query.binds)
            rows.append("(" + (1...width).map { "$\(i * width + $0)" }.joined(separator: ", ") + ")")
        }
        let insert =
            "INSERT INTO billing_records (\(BillingRecordRow.columns.joined(separator: ", "))) VALUES "
            + rows.joined(separator: ", ") + (skippingStored ? " ON CONFLICT (id) DO NOTHING" : "")
        guard !sinks.isEmpty else {
            query.sql = insert
            return query
        }
        query.binds.append(sinks)
        query.binds.append(SQLiteLedger.microseconds(Date()))
        let n = query.binds.count
        query.sql = """
            WITH r AS (\(insert) RETURNING id)
            INSERT INTO billing_outbox (record_id, sink, next_attempt_at, created_at)
            SELECT r.id, s.sink, $\(n)::int8, $\(n)::int8 FROM r CROSS JOIN unnest($\(n - 1)::text[]) AS s(sink)
            """
        return query
    }
}
