import Foundation
import GRDB
import Metering

/// Tenant and key settings that the admit stage reads: plan, time zone, currency, status, budget
/// overrides and per-key rate limits. Every change bumps `auth_version` (triggers), so a running
/// gateway picks it up within its poll interval.
extension GatewayStore {
    public struct TenantUpdate: Sendable {
        public var plan: String?
        public var timezone: String?
        public var currency: String?
        public var status: String?
        /// The tenant's Stripe customer id; an empty string clears it.
        public var stripeCustomerID: String?

        public init(
            plan: String? = nil, timezone: String? = nil, currency: String? = nil, status: String? = nil,
            stripeCustomerID: String? = nil
        ) {
            self.plan = plan
            self.timezone = timezone
            self.currency = currency
            self.status = status
            self.stripeCustomerID = stripeCustomerID
        }
    }

    @discardableResult
    public func updateTenant(_ idOrName: String, _ update: TenantUpdate) throws -> Tenant {
        try modifyTenant(idOrName, try Self.change(update))
    }

    /// Sets (or with `limit: nil` clears) the tenant's own budget, replacing its plan's.
    @discardableResult
    public func setBudget(
        _ idOrName: String, limit: String?, currency: String? = nil, period: CalendarPeriod.Kind = .month,
        soft: Bool = false
    ) throws -> Tenant {
        try modifyTenant(idOrName, try Self.budgetChange(limit: limit, currency: currency, period: period, soft: soft))
    }

    /// A Stripe customer id as a tenant may hold it: one word, at most 200 characters (empty clears it).
    static func isStripeCustomerID(_ id: String) -> Bool {
        id.count <= 200 && !id.contains(where: \.isWhitespace)
    }

    /// An update checked as every store checks it, as the change it makes to a tenant.
    static func change(_ update: TenantUpdate) throws -> @Sendable (inout Tenant) -> Void {
        if let tz = update.timezone, TimeZone(identifier: tz) == nil {
            throw StoreError.invalid("unknown time zone '\(tz)'")
        }
        if let c = update.currency { try checkCurrency(c) }
        let status = try update.status.map { text in
            guard let status = Tenant.Status(rawValue: text) else {
                throw StoreError.invalid("status must be active or suspended")
            }
            return status
        }
        if let id = update.stripeCustomerID, !isStripeCustomerID(id) {
            throw StoreError.invalid("a Stripe customer id is one word (such as cus_123), at most 200 characters")
        }
        return { tenant in
            if let id = update.stripeCustomerID { tenant.stripeCustomerID = id.isEmpty ? nil : id }
            if let plan = update.plan { tenant.plan = plan }
            if let tz = update.timezone { tenant.timezone = tz }
            if let c = update.currency { tenant.currency = c }
            if let status { tenant.status = status }
        }
    }

    /// A budget override (nil limit clears it) checked as every store checks it, as its change to a tenant.
    static func budgetChange(limit: String?, currency: String?, period: CalendarPeriod.Kind, soft: Bool) throws
        -> @Sendable (inout Tenant) -> Void
    {
        let nanos = try limit.map { text in
            guard let nanos = Money.parseNanos(text) else {
                throw StoreError.invalid("the limit must be a decimal amount such as 25.00")
            }
            return nanos
        }
        if let currency { try checkCurrency(currency) }
        return { tenant in
            tenant.budget = nanos.map {
                Tenant.BudgetOverride(
                    limit: Money(nanos: $0, currency: currency ?? tenant.currency ?? "USD"), period: period, soft: soft)
            }
        }
    }

    /// Sets (or with `amount: nil` clears) the tenant's own free allowance per period, replacing the
    /// plan's schedule: whole tokens, or a decimal credit amount in `currency`.
    @discardableResult
    public func setQuota(
        _ idOrName: String, amount: String?, credit currency: String? = nil, period: CalendarPeriod.Kind = .month
    ) throws -> Tenant {
        let quota = try Self.parseQuota(amount: amount, credit: currency, period: period)
        return try modifyTenant(idOrName) { tenant in tenant.quota = quota }
    }

    /// A quota override from its text (nil clears), checked as every store checks it.
    static func parseQuota(amount: String?, credit currency: String?, period: CalendarPeriod.Kind) throws
        -> Tenant.QuotaOverride?
    {
        guard let amount else { return nil }
        guard period == .day || period == .month else { throw StoreError.invalid("a quota period is day or month") }
        let parsed: Int64
        if let currency {
            try Self.checkCurrency(currency)
            guard let nanos = Money.parseNanos(amount) else {
                throw StoreError.invalid("a credit amount is a decimal such as 5.00")
            }
            parsed = nanos
        } else {
            guard let n = Int64(amount), n >= 0 else {
                throw StoreError.invalid("a token amount is a whole number")
            }
            parsed = n
        }
        return Tenant.QuotaOverride(
            amount: parsed, unit: currency.map { .credit(currency: $0) } ?? .tokens, period: period)
    }

    /// The values a key's own limits may take: those `policies/plans.yaml` allows a plan. Zero is refused,
    /// not taken as "no requests": such a key would answer every request with a 429 that invites retries
    /// forever; a key that must send nothing is revoked (`keys revoke`) or its tenant suspended.
    public static let requestsPerMinuteRange = 1...10_000_000
    public static let tokensPerMinuteRange = 1...Int(Int32.max)
    public static let concurrentRange = 1...1_000_000

    /// Sets a key's own rate limits (nil leaves the plan's in force).
    @discardableResult
    public func setKeyLimits(_ idOrPrefix: String, limits: RateLimits) throws -> VirtualKey {
        try Self.checkKeyLimits(limits)
        return try pool.write { db in
            var key = try Self.uniqueKey(idOrPrefix, db)
            key.requestsPerMinute = limits.requestsPerMinute
            key.tokensPerMinute = limits.tokensPerMinute
            key.concurrent = limits.concurrent
            try key.update(db)
            return key
        }
    }

    static func checkKeyLimits(_ limits: RateLimits) throws {
        for (name, value, range) in [
            ("requests per minute", limits.requestsPerMinute, Self.requestsPerMinuteRange),
            ("tokens per minute", limits.tokensPerMinute, Self.tokensPerMinuteRange),
            ("concurrent requests", limits.concurrent, Self.concurrentRange),
        ] {
            if let value, !range.contains(value) {
                throw StoreError.invalid("\(name) must be from \(range.lowerBound) to \(range.upperBound)")
            }
        }
    }

    /// Reads, changes and writes one tenant in a single write transaction.
    private func modifyTenant(_ idOrName: String, _ change: (inout Tenant) -> Void) throws -> Tenant {
        try pool.write { db in
            guard var tenant = try Tenant.filter(Column("id") == idOrName || Column("name") == idOrName).fetchOne(db)
            else { throw StoreError.notFound("no tenant '\(idOrName)'") }
            change(&tenant)
            try tenant.update(db)
            return tenant
        }
    }

    static func checkCurrency(_ code: String) throws {
        guard Money.isCurrencyCode(code) else {
            throw StoreError.invalid("currency must be an ISO 4217 code such as USD or CNY")
        }
    }

    /// Per-model totals of one tenant over `[from, to)`.
    public func usageByModel(_ query: BillingQuery) throws -> [(model: String, total: UsageTotal)] {
        let tenantFilter = query.tenantID == nil ? "" : " AND tenant_id = ?"
        var args: StatementArguments = [SQLiteLedger.microseconds(query.from), SQLiteLedger.microseconds(query.to)]
        if let t = query.tenantID { args += [t] }
        return try pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT model, COALESCE(currency, '') AS currency, COUNT(*) AS requests,
                        SUM(prompt_tokens) AS p, SUM(cached_tokens) AS c, SUM(cache_write_tokens) AS w,
                        SUM(completion_tokens) AS o, SUM(reasoning_tokens) AS r, SUM(COALESCE(cost_nanos, 0)) AS cost
                    FROM billing_records WHERE started_at >= ? AND started_at < ?\(tenantFilter)
                    GROUP BY 1, 2 ORDER BY 1, 2
                    """, arguments: args
            ).map { row in
                (
                    row["model"],
                    UsageTotal(
                        currency: row["currency"], requests: row["requests"], promptTokens: row["p"],
                        cachedTokens: row["c"], cacheWriteTokens: row["w"], completionTokens: row["o"],
                        reasoningTokens: row["r"], costNanos: row["cost"])
                )
            }
        }
    }
}
