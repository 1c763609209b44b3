import Foundation
import GRDB
import Metering

/// A customer of the gateway: usage, quotas and budgets are kept per tenant.
///
/// The store keeps flat text columns; this type reads them into domain values once, so the rest of
/// the gateway never compares strings or supplies defaults of its own.
public struct Tenant: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tenants"

    public enum Status: String, Codable, Sendable {
        case active
        case suspended
    }

    /// A budget of the tenant's own (`gateway budgets set`), replacing its plan's.
    public struct BudgetOverride: Sendable, Equatable {
        public var limit: Money
        public var period: CalendarPeriod.Kind
        public var soft: Bool

        public init(limit: Money, period: CalendarPeriod.Kind, soft: Bool) {
            self.limit = limit
            self.period = period
            self.soft = soft
        }
    }

    /// A free allowance of the tenant's own per period (`gateway quota set`), replacing its plan's
    /// schedule: tokens, or nano-units of credit.
    public struct QuotaOverride: Sendable, Equatable {
        public var amount: Int64
        public var unit: FreeQuota.Unit
        public var period: CalendarPeriod.Kind

        public init(amount: Int64, unit: FreeQuota.Unit, period: CalendarPeriod.Kind) {
            self.amount = amount
            self.unit = unit
            self.period = period
        }

        /// The amount as written: whole tokens, or a decimal amount of the credit's currency.
        public var amountText: String {
            switch unit {
            case .tokens: String(amount)
            case .credit(let currency): Money(nanos: amount, currency: currency).shortDecimalString
            }
        }
    }

    public var id: String
    public var name: String
    public var status: Status
    /// IANA time zone used for calendar periods (budgets reset at the tenant's local midnight).
    public var timezone: String
    public var createdAt: Date
    /// The plan in `policies/plans.yaml`; nil means the file's default plan.
    public var plan: String?
    /// The currency the tenant is billed in (reports); budgets name their own.
    public var currency: String?
    public var budget: BudgetOverride?
    public var quota: QuotaOverride?
    /// The tenant's customer in Stripe, for a `stripe` billing sink.
    public var stripeCustomerID: String?

    public init(
        id: String, name: String, status: Status = .active, timezone: String = "UTC", createdAt: Date,
        plan: String? = nil, currency: String? = nil, budget: BudgetOverride? = nil, quota: QuotaOverride? = nil
    ) {
        self.id = id
        self.name = name
        self.status = status
        self.timezone = timezone
        self.createdAt = createdAt
        self.plan = plan
        self.currency = currency
        self.budget = budget
        self.quota = quota
    }

    public var isActive: Bool { status == .active }

    enum CodingKeys: String, CodingKey {
        case id, name, status, timezone, plan, currency
        case createdAt = "created_at"
        case budgetLimit = "budget_limit"
        case budgetCurrency = "budget_currency"
        case budgetPeriod = "budget_period"
        case budgetSoft = "budget_soft"
        case quotaAmount = "quota_amount"
        case quotaUnit = "quota_unit"
        case quotaCurrency = "quota_currency"
        case quotaPeriod = "quota_period"
        case stripeCustomerID = "stripe_customer_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        status = try c.decode(Status.self, forKey: .status)
        timezone = try c.decode(String.self, forKey: .timezone)
        createdAt = try c.decode(Date.self, forKey: .createdAt)
        plan = try c.decodeIfPresent(String.self, forKey: .plan)
        currency = try c.decodeIfPresent(String.self, forKey: .currency)
        stripeCustomerID = try c.decodeIfPresent(String.self, forKey: .stripeCustomerID)
        func period(_ key: CodingKeys) throws -> CalendarPeriod.Kind {
            try c.decodeIfPresent(String.self, forKey: key).flatMap(CalendarPeriod.Kind.init(rawValue:)) ?? .month
        }
        if let text = try c.decodeIfPresent(String.self, forKey: .budgetLimit), let nanos = Money.parseNanos(text) {
            let budgetCurrency = try c.decodeIfPresent(String.self, forKey: .budgetCurrency) ?? currency ?? "USD"
            budget = BudgetOverride(
                limit: Money(nanos: nanos, currency: budgetCurrency), period: try period(.budgetPeriod),
                soft: try c.decodeIfPresent(Bool.self, forKey: .budgetSoft) ?? false)
        }
        if let text = try c.decodeIfPresent(String.self, forKey: .quotaAmount) {
            let credit = try c.decodeIfPresent(String.self, forKey: .quotaUnit) == "credit"
            let unit: FreeQuota.Unit =
                credit
                ? .credit(currency: try c.decodeIfPresent(String.self, forKey: .quotaCurrency) ?? "USD") : .tokens
            if let amount = credit ? Money.parseNanos(text) : Int64(text) {
                quota = QuotaOverride(amount: amount, unit: unit, period: try period(.quotaPeriod))
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(status, forKey: .status)
        try c.encode(timezone, forKey: .timezone)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(plan, forKey: .plan)
        try c.encode(currency, forKey: .currency)
        try c.encode(budget.map { $0.limit.decimalString }, forKey: .budgetLimit)
        try c.encode(budget?.limit.currency, forKey: .budgetCurrency)
        try c.encode(budget?.period.rawValue, forKey: .budgetPeriod)
        try c.encode(budget?.soft, forKey: .budgetSoft)
        try c.encode(
            quota.map { q -> String in
                if case .credit(let cur) = q.unit { return Money(nanos: q.amount, currency: cur).decimalString }
                return String(q.amount)
            }, forKey: .quotaAmount)
        let credit: String? = quota.flatMap { if case .credit(let cur) = $0.unit { cur } else { nil } }
        try c.encode(quota.map { _ in credit == nil ? "tokens" : "credit" }, forKey: .quotaUnit)
        try c.encode(credit, forKey: .quotaCurrency)
        try c.encode(quota?.period.rawValue, forKey: .quotaPeriod)
        try c.encode(stripeCustomerID, forKey: .stripeCustomerID)
    }
}

/// A credential a tenant's application sends. Only its SHA-256 hash is stored; `prefix` identifies it
/// in listings without revealing it.
public struct VirtualKey: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "virtual_keys"

    public var id: String
    public var tenantID: String
    public var name: String?
    public var prefix: String
    public var hash: Data
    public var createdAt: Date
    public var revokedAt: Date?
    /// Per-key rate limits that replace the plan's.
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public var concurrent: Int?

    enum CodingKeys: String, CodingKey {
        case id, name, prefix, hash, concurrent
        case tenantID = "tenant_id"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
        case requestsPerMinute = "requests_per_minute"
        case tokensPerMinute = "tokens_per_minute"
    }

    public var isRevoked: Bool { revokedAt != nil }
}
