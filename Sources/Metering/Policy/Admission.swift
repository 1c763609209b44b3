import Foundation

/// Who is asking, with the plan in force for them (overrides applied).
public struct TenantContext: Sendable {
    public var tenantID: String
    public var keyID: String
    public var timeZone: TimeZone
    public var createdAt: Date
    public var plan: Plan
    /// The plan's per-key limits with this key's overrides applied.
    public var keyLimits: RateLimits

    public init(
        tenantID: String, keyID: String, timeZone: TimeZone, createdAt: Date, plan: Plan, keyLimits: RateLimits? = nil
    ) {
        self.tenantID = tenantID
        self.keyID = keyID
        self.timeZone = timeZone
        self.createdAt = createdAt
        self.plan = plan
        self.keyLimits = plan.keyLimits.overridden(by: keyLimits)
    }
}

/// One request at the admit stage.
public struct AdmissionRequest: Sendable {
    public var model: String
    /// Exact (or calibrated) prompt tokens, and the most output the request can produce as completion.
    public var estimate: Usage
    public var requestedMaxOutput: Int?
    public var price: PriceEntry?
    /// When the request started: its periods and rate windows.
    public var now: Date
    /// When it is admitted (its body read, which a slow client can stretch): its reservation's expiry
    /// runs from here, so a reservation never starts out already expired.
    public var admittedAt: Date

    public init(
        model: String, estimate: Usage, requestedMaxOutput: Int?, price: PriceEntry?, now: Date,
        admittedAt: Date? = nil
    ) {
        self.model = model
        self.estimate = estimate
        self.requestedMaxOutput = requestedMaxOutput
        self.price = price
        self.now = now
        self.admittedAt = max(now, admittedAt ?? now)
    }
}

public enum Admission: Sendable {
    case admitted(Reservation, RateLimitStatus?)
    case rejected(Rejection)
}

/// What an admitted request holds until it settles.
public struct Reservation: Sendable {
    public struct Part: Sendable {
        public var key: PolicyEngine.CounterKey
        public var units: Int64
        public var allowance: Int64
    }

    /// Unique within the engine that admitted it; settlement and the sweeper find it by this.
    public var id: UInt64 = 0
    /// After this instant the sweeper releases the reservation if its request never settled it.
    public var expiresAt: Date = .distantFuture
    public var tenantID: String
    public var keyID: String
    public var model: String
    public var estimate: Usage
    public var estimatedCost: Money?
    public var scopes: [String]
    public var free: Part?
    public var grant: Part?
    public var budget: Part?
    public var quotaUnit: FreeQuota.Unit?
    public var budgetPolicy: Budget?

    public var estimatedTokens: Int { estimate.prompt.saturatingAdding(estimate.completion) }

    /// Whether any quota, budget or rate limit holds this request, so that its output must stay within
    /// what was reserved.
    public var limitsApply: Bool { free != nil || grant != nil || budget != nil || !scopes.isEmpty }
}

public struct RateLimitStatus: Sendable, Equatable {
    public var limitRequests: Int?
    public var remainingRequests: Int?
    public var limitTokens: Int?
    public var remainingTokens: Int?
}

/// Why a request was not admitted; rendered as 429 `insufficient_quota` / `rate_limit_exceeded`, or
/// 400/403 for plan restrictions.
public struct Rejection: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        case insufficientQuota = "insufficient_quota"
        case rateLimited = "rate_limit_exceeded"
        case modelNotAllowed = "model_not_allowed"
        case maxOutputTooLarge = "max_tokens_exceeds_plan"
        case noExchangeRate = "no_exchange_rate"
        case requestTooLarge = "request_too_large"
    }

    public var kind: Kind
    public var message: String
    public var retryAfterSeconds: Int?
    public var rateLimits: RateLimitStatus?

    public init(kind: Kind, message: String, retryAfterSeconds: Int? = nil, rateLimits: RateLimitStatus? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
        self.rateLimits = rateLimits
    }

    public var httpStatus: Int {
        switch kind {
        case .insufficientQuota, .rateLimited: return 429
        case .modelNotAllowed: return 403
        case .maxOutputTooLarge, .noExchangeRate, .requestTooLarge: return 400
        }
    }
}

/// How a settled request's cost splits: free (quota and grant) and charged (against the budget).
public struct ChargeSplit: Sendable, Equatable {
    public var freeUnits: Int64 = 0
    public var grantUnits: Int64 = 0
    /// The part of the cost the free quota covered, in the price's currency.
    public var freeCost: Money?
    /// The rest, in the price's currency.
    public var charged: Money?
    /// `charged` in the budget's currency, as counted against the budget.
    public var budgetCharge: Money?
    public var alerts: [BudgetAlert] = []

    public init(freeCost: Money? = nil, charged: Money? = nil) {
        self.freeCost = freeCost
        self.charged = charged
    }
}

extension BillingRecord {
    /// Writes a settlement's free and paid split into the record.
    public mutating func apply(_ split: ChargeSplit) {
        freeUnits = split.freeUnits
        grantUnits = split.grantUnits
        freeCost = split.freeCost
        charged = split.charged
        budgetCharge = split.budgetCharge
    }
}

/// A budget threshold crossed, once per period.
public struct BudgetAlert: Sendable, Equatable {
    public var tenantID: String
    public var percent: Int
    public var used: Money
    public var limit: Money
    public var periodStart: Date
    public var hard: Bool
}
