import Foundation

/// What a tenant may use: free quota, budget, rate limits, allowed models and an output cap.
///
/// Plans come from `policies/plans.yaml`; a tenant names one, and the database may override its budget
/// and its keys' rate limits.
public struct Plan: Sendable, Equatable {
    public var name: String
    public var freeQuota: FreeQuota?
    public var budget: Budget?
    public var tenantLimits: RateLimits
    public var keyLimits: RateLimits
    /// Public model names this plan may call; nil means every model.
    public var allowedModels: Set<String>?
    /// Largest `max_tokens` a request may ask for; also the estimate for a request that names none.
    public var maxOutputTokens: Int?
    /// Whether a request may be served by a model's fallbacks when its provider fails (`fallbacks:
    /// false` in plans.yaml turns it off). A fallback must be in `allowedModels` too.
    public var fallbacks = true

    public init(
        name: String, freeQuota: FreeQuota? = nil, budget: Budget? = nil, tenantLimits: RateLimits = .init(),
        keyLimits: RateLimits = .init(), allowedModels: Set<String>? = nil, maxOutputTokens: Int? = nil
    ) {
        self.name = name
        self.freeQuota = freeQuota
        self.budget = budget
        self.tenantLimits = tenantLimits
        self.keyLimits = keyLimits
        self.allowedModels = allowedModels
        self.maxOutputTokens = maxOutputTokens
    }
}

/// A free allowance per calendar period that follows a dated schedule, so a free tier can shrink on a
/// given date, plus an optional one-off grant that expires some days after the tenant was created.
public struct FreeQuota: Sendable, Equatable {
    public enum Unit: Sendable, Equatable {
        case tokens
        /// Money in nano-units of this currency.
        case credit(currency: String)
    }

    /// One step of the schedule: from this local date (midnight in the tenant's time zone) on, the
    /// allowance per period is `amount` (tokens, or nano-units of credit).
    public struct Step: Sendable, Equatable {
        public var year: Int
        public var month: Int
        public var day: Int
        public var amount: Int64

        public init(year: Int, month: Int, day: Int, amount: Int64) {
            self.year = year
            self.month = month
            self.day = day
            self.amount = amount
        }

        func start(in zone: TimeZone) -> Date {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            return calendar.date(from: DateComponents(year: year, month: month, day: day))!
        }
    }

    public var unit: Unit
    public var period: CalendarPeriod.Kind
    /// Only these public models draw from the quota; nil means every model.
    public var models: Set<String>?
    public var schedule: [Step]
    public var grantAmount: Int64
    public var grantDays: Int

    public init(
        unit: Unit, period: CalendarPeriod.Kind, models: Set<String>? = nil, schedule: [Step], grantAmount: Int64 = 0,
        grantDays: Int = 0
    ) {
        self.unit = unit
        self.period = period
        self.models = models
        self.schedule = schedule
        self.grantAmount = grantAmount
        self.grantDays = grantDays
    }

    /// The allowance in force at `instant` in the tenant's zone: the latest step that has begun. If it
    /// shrinks mid-period below what was used, nothing remains until the next period.
    public func allowance(at instant: Date, timeZone: TimeZone) -> Int64 {
        schedule.last { $0.start(in: timeZone) <= instant }?.amount ?? 0
    }

    public func applies(toModel model: String) -> Bool { models?.contains(model) ?? true }
}

/// A spending limit per calendar period, in one currency.
public struct Budget: Sendable, Equatable {
    public var limit: Money
    public var period: CalendarPeriod.Kind
    /// Hard rejects what would exceed it; soft admits and alerts.
    public var hard: Bool
    /// Percentages of the limit that fire an alert, once per period each.
    public var alertPercents: [Int]

    /// The thresholds a budget alerts at when its plan names none.
    public static let defaultAlertPercents = [50, 80, 100]

    public init(
        limit: Money, period: CalendarPeriod.Kind, hard: Bool = true, alertPercents: [Int] = Budget.defaultAlertPercents
    ) {
        self.limit = limit
        self.period = period
        self.hard = hard
        self.alertPercents = alertPercents.sorted()
    }
}

/// Requests per minute, tokens per minute (estimated at admission) and concurrent requests.
public struct RateLimits: Sendable, Equatable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public var concurrent: Int?

    public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, concurrent: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.concurrent = concurrent
    }

    public var isEmpty: Bool { requestsPerMinute == nil && tokensPerMinute == nil && concurrent == nil }

    /// Each limit of `other` that is set replaces this one's.
    public func overridden(by other: RateLimits?) -> RateLimits {
        guard let other else { return self }
        return RateLimits(
            requestsPerMinute: other.requestsPerMinute ?? requestsPerMinute,
            tokensPerMinute: other.tokensPerMinute ?? tokensPerMinute, concurrent: other.concurrent ?? concurrent)
    }
}
