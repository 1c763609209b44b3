import Foundation
import GRDB
import Metering

/// Reading the billing ledger: pages for export, sums for usage reports.
extension GatewayStore {
    /// Records whose start lies in `[from, to)`, optionally of one tenant.
    public struct BillingQuery: Sendable {
        public var from: Date
        public var to: Date
        public var tenantID: String?

        public init(from: Date, to: Date, tenantID: String? = nil) {
            self.from = from
            self.to = to
            self.tenantID = tenantID
        }

        fileprivate func filter(afterSeq: Int64) -> (String, StatementArguments) {
            var sql = "seq > ? AND started_at >= ? AND started_at < ?"
            var args: StatementArguments = [
                afterSeq, SQLiteLedger.microseconds(from), SQLiteLedger.microseconds(to),
            ]
            if let tenantID {
                sql += " AND tenant_id = ?"
                args += [tenantID]
            }
            return (sql, args)
        }
    }

    /// Totals per currency (records without a price are grouped under an empty currency).
    public struct UsageTotal: Sendable, Equatable {
        public var currency: String
        public var requests: Int
        public var promptTokens: Int
        public var cachedTokens: Int
        public var cacheWriteTokens: Int
        public var completionTokens: Int
        public var reasoningTokens: Int
        public var costNanos: Int64
    }

    /// One page in `seq` order after `afterSeq`. Exports walk the ledger page by page (keyset
    /// pagination), so memory stays constant and no read transaction is held between pages.
    public func billingPage(
        _ query: BillingQuery, afterSeq: Int64, limit: Int
    ) async throws -> [(seq: Int64, record: BillingRecord)] {
        try await pool.read { db in try Self.page(db, query, afterSeq: afterSeq, limit: limit) }
    }

    public func billingPageNow(
        _ query: BillingQuery, afterSeq: Int64, limit: Int
    ) throws -> [(seq: Int64, record: BillingRecord)] {
        try pool.read { db in try Self.page(db, query, afterSeq: afterSeq, limit: limit) }
    }

    public func usageTotals(_ query: BillingQuery) throws -> [UsageTotal] {
        let (filter, args) = query.filter(afterSeq: 0)
        return try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT COALESCE(currency, '') AS currency, COUNT(*) AS requests,
                        SUM(prompt_tokens) AS p, SUM(cached_tokens) AS c, SUM(cache_write_tokens) AS w,
                        SUM(completion_tokens) AS o, SUM(reasoning_tokens) AS r, SUM(COALESCE(cost_nanos, 0)) AS cost
                    FROM billing_records WHERE \(filter) GROUP BY 1 ORDER BY 1
                    """, arguments: args
            ).map { row in
                UsageTotal(
                    currency: row["currency"], requests: row["requests"], promptTokens: row["p"],
                    cachedTokens: row["c"],
                    cacheWriteTokens: row["w"], completionTokens: row["o"], reasoningTokens: row["r"],
                    costNanos: row["cost"])
            }
        }
    }

    /// The names of all tenants, by id (for export rows).
    public func tenantNames() throws -> [String: String] {
        try pool.read { db in
            Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, name FROM tenants").map {
                    ($0["id"] as String, $0["name"] as String)
                })
        }
    }

    private static func page(
        _ db: Database, _ query: BillingQuery, afterSeq: Int64, limit: Int
    ) throws -> [(seq: Int64, record: BillingRecord)] {
        let (filter, args) = query.filter(afterSeq: afterSeq)
        return try Row.fetchAll(
            db, sql: "SELECT * FROM billing_records WHERE \(filter) ORDER BY seq LIMIT \(limit)", arguments: args
        ).map { ($0["seq"], record($0)) }
    }

    static func record(_ row: Row) -> BillingRecord { BillingRecordRow.record(row) }

    /// A policy counter's settled total, summed from the ledger (how counters are rebuilt at start).
    public func counterTotal(_ key: PolicyEngine.CounterKey) throws -> Int64 {
        var sql: String
        var args: StatementArguments = [key.tenantID]
        switch key.pool {
        case .free: sql = "SELECT COALESCE(SUM(free_units), 0) FROM billing_records WHERE tenant_id = ?"
        case .grant: sql = "SELECT COALESCE(SUM(grant_units), 0) FROM billing_records WHERE tenant_id = ?"
        case .budget:
            sql =
                "SELECT COALESCE(SUM(budget_charge_nanos), 0) FROM billing_records WHERE tenant_id = ? AND budget_currency = ?"
            args += [key.currency]
        }
        if let start = key.periodStart, let end = key.periodEnd {
            sql += " AND started_at >= ? AND started_at < ?"
            args += [SQLiteLedger.microseconds(start), SQLiteLedger.microseconds(end)]
        }
        let query = sql
        let arguments = args
        return try pool.read { db in try Int64.fetchOne(db, sql: query, arguments: arguments) ?? 0 }
    }
}
