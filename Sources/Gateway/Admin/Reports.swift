import Foundation
import Metering

/// The reports of `docs/reports.md` over a store's ledger, read page by page (only sums are kept), for
/// the CLI, the admin API, a tenant's `/v1/usage/...` and the console.
public struct Reports: Sendable {
    let store: any Store
    var pageSize = 1000

    public init(store: any Store) { self.store = store }

    /// Calls `body` with every record of `query`, in commit order.
    func each(_ query: GatewayStore.BillingQuery, _ body: (BillingRecord) -> Void) async throws {
        try await store.eachPage(query, size: pageSize) { page in for (_, record) in page { body(record) } }
    }

    /// Token inflation over [from, to), bucketed by the tenants' own days, weeks or months. Buckets are
    /// clipped to the range, so totals equal the export's; the first bucket's change is against the whole
    /// bucket before it.
    public func inflation(
        from: Date, to: Date, tenantID: String?, by kind: CalendarPeriod.Kind, prices: PriceBook
    ) async throws -> InflationReport {
        let zones = Dictionary(
            try await store.tenants().map { ($0.id, TimeZone(identifier: $0.timezone) ?? .gmt) },
            uniquingKeysWith: { a, _ in a })
        var builder = InflationReport.Builder(by: kind, timeZone: { zones[$0] ?? .gmt }, prices: prices)
        try await each(.init(from: from, to: to, tenantID: tenantID)) { builder.add($0, inRange: true) }
        // Enough to cover the bucket before the first one in any time zone.
        let back: TimeInterval = (kind == .month ? 33 : kind == .week ? 9 : 2) * 86_400
        try await each(.init(from: from.addingTimeInterval(-back), to: from, tenantID: tenantID)) {
            builder.add($0, inRange: false)
        }
        return builder.finish()
    }

    /// Every completed record of [from, to) repriced under `prices` (at each record's start, or at `at`).
    public func whatIf(from: Date, to: Date, tenantID: String?, prices: PriceBook, at instant: Date?) async throws
        -> WhatIfReport
    {
        var builder = WhatIfReport.Builder(prices: prices, at: instant)
        try await each(.init(from: from, to: to, tenantID: tenantID)) { builder.add($0) }
        return builder.finish()
    }

    /// How long the tenant's free quota and budget last at the recent rate, and what the period comes
    /// to. The rate is the usage of the last seven days (or since the tenant was created, at least an
    /// hour) per second. A tenant without a budget gets a `spend` row per currency for its month.
    public func forecast(tenant: Tenant, policy: PolicyService, now: Date = Date()) async throws -> ReportTable {
        let standing = try await policy.standing(tenant: tenant, now: now)
        let plan = policy.context(for: tenant, key: nil).plan
        let zone = TimeZone(identifier: tenant.timezone) ?? .gmt
        let window = max(3_600, min(7 * 86_400, now.timeIntervalSince(tenant.createdAt)))
        let windowStart = now.addingTimeInterval(-window)
        let month = CalendarPeriod.containing(now, kind: .month, timeZone: zone)
        var free: Int64 = 0
        var grant: Int64 = 0
        var budget: [String: Int64] = [:]
        var charged: [String: Int64] = [:]
        try await each(.init(from: windowStart, to: now, tenantID: tenant.id)) { r in
            free.saturatingAdd(r.freeUnits)
            grant.saturatingAdd(r.grantUnits)
            if let b = r.budgetCharge { budget[b.currency, default: 0].saturatingAdd(b.nanos) }
            if let c = r.charged { charged[c.currency, default: 0].saturatingAdd(c.nanos) }
        }
        var monthSpend: [String: Int64] = [:]
        if plan.budget == nil {
            try await each(.init(from: month.start, to: now, tenantID: tenant.id)) { r in
                if let c = r.charged { monthSpend[c.currency, default: 0].saturatingAdd(c.nanos) }
            }
        }
        var table = ReportTable(columns: [
            "tenant_id", "pool", "unit", "period_start", "period_end", "used", "reserved", "limit", "remaining",
            "rate_per_day", "runs_out_at", "projected_total",
        ])
        func row(
            _ pool: String, unit: String, start: Date, end: Date, used: Int64, reserved: Int64, limit: Int64?,
            usage: Int64
        ) {
            let f = PoolForecast.project(
                used: used, limit: limit ?? .max, periodStart: start, periodEnd: end, windowUsage: usage,
                window: window, now: now)
            let amount = { (v: Int64) -> JSONValue in .string(QuotaReport.amount(v, unit: unit)) }
            table.rows.append([
                .string(tenant.id), .string(pool), .string(unit), .string(BillingExportFormat.timestamp(start)),
                .string(BillingExportFormat.timestamp(end)), amount(used), amount(reserved),
                limit.map(amount) ?? .null,
                limit.map { amount(max(0, $0.saturatingSubtracting(used).saturatingSubtracting(reserved))) } ?? .null,
                amount(f.ratePerDay),
                limit == nil ? .null : f.runsOutAt.map { .string(BillingExportFormat.timestamp($0)) } ?? .null,
                amount(f.projectedTotal),
            ])
        }
        for (key, used, reserved, limit) in standing {
            // The grant has no period: it runs from the tenant's creation for its days.
            let start = key.periodStart ?? tenant.createdAt
            let grantEnd = tenant.createdAt.addingTimeInterval(Double(plan.freeQuota?.grantDays ?? 0) * 86_400)
            let end = key.periodEnd ?? grantEnd
            let usage: Int64
            switch key.pool {
            case .free: usage = free
            case .grant: usage = grant
            case .budget: usage = budget[key.currency ?? ""] ?? 0
            }
            row(
                key.pool.rawValue, unit: QuotaReport.unit(key, plan: plan), start: start, end: end, used: used,
                reserved: reserved, limit: limit, usage: usage)
        }
        for (currency, spent) in monthSpend.sorted(by: { $0.key < $1.key }) {
            row(
                "spend", unit: currency, start: month.start, end: month.end, used: spent, reserved: 0, limit: nil,
                usage: charged[currency] ?? 0)
        }
        return table
    }
}
