import Foundation
import Logging
import Metering
import PostgresNIO

/// Reading the ledger in PostgreSQL: pages for export, sums for usage and for rebuilding counters.
extension PostgresStore {
    // MARK: Billing reads

    private static func filter(_ query: GatewayStore.BillingQuery, afterSeq: Int64) -> PostgresQuery {
        var q = PostgresQuery(unsafeSQL: "seq > $1 AND started_at >= $2 AND started_at < $3")
        q.binds.append(afterSeq)
        q.binds.append(SQLiteLedger.microseconds(query.from))
        q.binds.append(SQLiteLedger.microseconds(query.to))
        if let tenantID = query.tenantID {
            q.sql += " AND tenant_id = $4"
            q.binds.append(tenantID)
        }
        return q
    }

    public func billingPage(_ query: GatewayStore.BillingQuery, afterSeq: Int64, limit: Int) async throws
        -> [(seq: Int64, record: BillingRecord)]
    {
        var q = Self.filter(query, afterSeq: afterSeq)
        q.sql = "SELECT * FROM billing_records WHERE \(q.sql) ORDER BY seq LIMIT \(max(0, limit))"
        return try await client.query(q, logger: logger).collect().map { row in
            (try row.makeRandomAccess()["seq"].decode(Int64.self), try PostgresBillingRow.record(row))
        }
    }

    static let totalsColumns = """
        COALESCE(currency, '') AS currency, COUNT(*)::bigint AS requests,
        COALESCE(SUM(prompt_tokens), 0)::bigint AS p, COALESCE(SUM(cached_tokens), 0)::bigint AS c,
        COALESCE(SUM(cache_write_tokens), 0)::bigint AS w, COALESCE(SUM(completion_tokens), 0)::bigint AS o,
        COALESCE(SUM(reasoning_tokens), 0)::bigint AS r, COALESCE(SUM(COALESCE(cost_nanos, 0)), 0)::bigint AS cost
        """

    static func total(_ row: PostgresRow) throws -> GatewayStore.UsageTotal {
        let r = row.makeRandomAccess()
        return GatewayStore.UsageTotal(
            currency: try r["currency"].decode(String.self), requests: try r["requests"].decode(Int.self),
            promptTokens: try r["p"].decode(Int.self), cachedTokens: try r["c"].decode(Int.self),
            cacheWriteTokens: try r["w"].decode(Int.self), completionTokens: try r["o"].decode(Int.self),
            reasoningTokens: try r["r"].decode(Int.self), costNanos: try r["cost"].decode(Int64.self))
    }

    public func usageTotals(_ query: GatewayStore.BillingQuery) async throws -> [GatewayStore.UsageTotal] {
        var q = Self.filter(query, afterSeq: 0)
        q.sql = "SELECT \(Self.totalsColumns) FROM billing_records WHERE \(q.sql) GROUP BY 1 ORDER BY 1"
        return try await client.query(q, logger: logger).collect().map(Self.total)
    }

    public func usageByModel(_ query: GatewayStore.BillingQuery) async throws
        -> [(model: String, total: GatewayStore.UsageTotal)]
    {
        var q = Self.filter(query, afterSeq: 0)
        q.sql =
            "SELECT model, \(Self.totalsColumns) FROM billing_records WHERE \(q.sql) GROUP BY model, 2 ORDER BY 1, 2"
        return try await client.query(q, logger: logger).collect().map { row in
            (try row.makeRandomAccess()["model"].decode(String.self), try Self.total(row))
        }
    }

    public func tenantNames() async throws -> [String: String] {
        var names: [String: String] = [:]
        for try await (id, name) in try await client.query("SELECT id, name FROM tenants", logger: logger).decode(
            (String, String).self)
        {
            names[id] = name
        }
        return names
    }

    public func counterTotal(_ key: PolicyEngine.CounterKey) async throws -> Int64 {
        let column: String
        switch key.pool {
        case .free: column = "free_units"
        case .grant: column = "grant_units"
        case .budget: column = "budget_charge_nanos"
        }
        var q = PostgresQuery(
            unsafeSQL: "SELECT COALESCE(SUM(\(column)), 0)::bigint FROM billing_records WHERE tenant_id = $1")
        q.binds.append(key.tenantID)
        if key.pool == .budget {
            q.sql += " AND budget_currency = $\(q.binds.count + 1)"
            q.binds.append(key.currency)
        }
        if let start = key.periodStart, let end = key.periodEnd {
            q.sql += " AND started_at >= $\(q.binds.count + 1) AND started_at < $\(q.binds.count + 2)"
            q.binds.append(SQLiteLedger.microseconds(start))
            q.binds.append(SQLiteLedger.microseconds(end))
        }
        for try await total in try await client.query(q, logger: logger).decode(Int64.self) { return total }
        return 0
    }
}
