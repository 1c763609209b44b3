import Foundation
import GRDB

/// A customer of the gateway: usage, quotas and budgets are kept per tenant.
public struct Tenant: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tenants"

    public var id: String
    public var name: String
    public var status: String
    /// IANA time zone used for calendar periods (budgets reset at the tenant's local midnight).
    public var timezone: String
    public var createdAt: Date
    /// The plan in `policies/plans.yaml`; nil means the file's default plan.
    public var plan: String?
    /// The currency the tenant is billed in (reports); budgets name their own.
    public var currency: String?
    /// A budget that replaces the plan's (`gateway budgets set`).
    public var budgetLimit: String?
    public var budgetCurrency: String?
    public var budgetPeriod: String?
    public var budgetSoft: Bool?
    /// A free quota that replaces the plan's allowance (`gateway quota set`): amount per period, in
    /// tokens or in credit of `quotaCurrency`.
    public var quotaAmount: String?
    public var quotaUnit: String?
    public var quotaCurrency: String?
    public var quotaPeriod: String?

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
