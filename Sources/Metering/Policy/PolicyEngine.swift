import Foundation

/// The admit and settle decisions for quotas, budgets and rate limits, as a plain state machine.
///
/// It holds counters per (tenant, pool, period): `used` (settled) and `reserved` (admitted, in flight).
/// `admit` reserves a request's estimate against what remains, or rejects it; `settle` replaces the
/// reservation with the actual usage and splits the cost into its free and paid parts. Free quota is
/// drawn first (the periodic allowance, then the one-off grant), then the budget. Every decision is a
/// compare-and-add on counters, so a SQL store can do each as one conditional UPDATE (see
/// docs/scale-out.md); here the caller holds one lock around each call.
///
/// Counters are not stored: they are rebuilt from the ledger (``restore(_:used:)``), so after a restart
/// they equal the sum of the records.
public struct PolicyEngine: Sendable {
    public struct CounterKey: Hashable, Sendable {
        public enum Pool: String, Sendable {
            case free
            case grant
            case budget
        }
        public var pool: Pool
        public var tenantID: String
        /// Start of the period (nil for the grant, which spans the tenant's life).
        public var periodStart: Date?
        public var periodEnd: Date?
        /// The budget's currency (its counter is in nano-units of it).
        public var currency: String?
    }

    struct Counter {
        var used: Int64 = 0
        var reserved: Int64 = 0
    }

    private var counters: [CounterKey: Counter] = [:]
    private var windows: [String: RateWindow] = [:]
    private var inflight: [String: Int] = [:]
    private var firedAlerts: Set<String> = []

    public init() {}

    // MARK: Rebuilding from the ledger

    /// The counters a request of this tenant for `model` at `now` touches that are not loaded yet.
    public func missingCounters(_ tenant: TenantContext, model: String, now: Date) -> [CounterKey] {
        Self.keys(tenant, model: model, now: now).filter { counters[$0] == nil }
    }

    /// Sets a counter's settled total from the ledger. Call before the first admission that uses it.
    public mutating func restore(_ key: CounterKey, used: Int64) {
        if counters[key] == nil { counters[key] = Counter(used: used) }
    }

    static func keys(_ tenant: TenantContext, model: String, now: Date) -> [CounterKey] {
        var keys: [CounterKey] = []
        if let q = tenant.plan.freeQuota, q.applies(toModel: model) {
            let p = CalendarPeriod.containing(now, kind: q.period, timeZone: tenant.timeZone)
            keys.append(CounterKey(pool: .free, tenantID: tenant.tenantID, periodStart: p.start, periodEnd: p.end))
            if q.grantAmount > 0 { keys.append(CounterKey(pool: .grant, tenantID: tenant.tenantID)) }
        }
        if let b = tenant.plan.budget {
            let p = CalendarPeriod.containing(now, kind: b.period, timeZone: tenant.timeZone)
            keys.append(
                CounterKey(
                    pool: .budget, tenantID: tenant.tenantID, periodStart: p.start, periodEnd: p.end,
                    currency: b.limit.currency))
        }
        return keys
    }

    // MARK: Admit

    public mutating func admit(
        _ tenant: TenantContext, _ request: AdmissionRequest, convert: (Money, String) -> Money?
    ) -> Admission {
        let plan = tenant.plan
        let now = request.now
        if let allowed = plan.allowedModels, !allowed.contains(request.model) {
            return .rejected(
                Rejection(
                    kind: .modelNotAllowed,
                    message: "Your plan '\(plan.name)' does not include the model '\(request.model)'."))
        }
        if let cap = plan.maxOutputTokens, let asked = request.requestedMaxOutput, asked > cap {
            return .rejected(
                Rejection(
                    kind: .maxOutputTooLarge,
                    message: "max_tokens is \(asked), but your plan '\(plan.name)' allows at most \(cap)."))
        }
        let estimateTokens = request.estimate.prompt + request.estimate.completion

        // Rate limits: tenant, then key.
        let scopes = [("t|" + tenant.tenantID, plan.tenantLimits), ("k|" + tenant.keyID, tenant.keyLimits)]
        var status: RateLimitStatus?
        for (scope, limits) in scopes where !limits.isEmpty {
            var window = windows[scope] ?? RateWindow()
            window.prune(now: now)
            windows[scope] = window
            if let c = limits.concurrent, (inflight[scope] ?? 0) + 1 > c {
                return .rejected(
                    Rejection(
                        kind: .rateLimited, message: "Too many concurrent requests (limit \(c)); try again shortly.",
                        retryAfterSeconds: 1, rateLimits: Self.status(window, limits, estimateTokens)))
            }
            let wait = window.retryAfter(now: now, limits: limits, needTokens: estimateTokens)
            if wait > 0 {
                let which =
                    limits.requestsPerMinute.map { window.requests + 1 > $0 } ?? false
                    ? "requests per minute (limit \(limits.requestsPerMinute!))"
                    : "tokens per minute (limit \(limits.tokensPerMinute ?? 0), this request needs \(estimateTokens))"
                return .rejected(
                    Rejection(
                        kind: .rateLimited, message: "Rate limit reached for \(which). Retry after \(wait)s.",
                        retryAfterSeconds: wait, rateLimits: Self.status(window, limits, estimateTokens)))
            }
            status = Self.status(window, limits, estimateTokens)
        }

        var reservation = Reservation(
            tenantID: tenant.tenantID, keyID: tenant.keyID, model: request.model, estimate: request.estimate,
            estimatedCost: request.price?.cost(of: request.estimate), scopes: [])
        reservation.scopes = scopes.filter { !$0.1.isEmpty }.map(\.0)

        // Free quota first: the periodic allowance, then the grant.
        var coveredUnits: Int64 = 0
        var neededUnits: Int64 = 0
        if let q = plan.freeQuota, q.applies(toModel: request.model) {
            neededUnits = Self.units(q.unit, tokens: estimateTokens, cost: reservation.estimatedCost, convert)
            let keys = Self.keys(tenant, model: request.model, now: now)
            let freeKey = keys.first { $0.pool == .free }!
            let allowance = q.allowance(at: now, timeZone: tenant.timeZone)
            let free = counters[freeKey] ?? Counter()
            let take = min(neededUnits, max(0, allowance - free.used - free.reserved))
            reservation.free = .init(key: freeKey, units: take, allowance: allowance)
            coveredUnits = take
            if neededUnits > take, q.grantAmount > 0,
                now < tenant.createdAt.addingTimeInterval(Double(q.grantDays) * 86_400)
            {
                let grantKey = keys.first { $0.pool == .grant }!
                let grant = counters[grantKey] ?? Counter()
                let g = min(neededUnits - take, max(0, q.grantAmount - grant.used - grant.reserved))
                reservation.grant = .init(key: grantKey, units: g, allowance: q.grantAmount)
                coveredUnits += g
            }
            reservation.quotaUnit = q.unit
        }

        // Then the budget, for whatever the free quota does not cover.
        if let b = plan.budget {
            let key = Self.keys(tenant, model: request.model, now: now).first { $0.pool == .budget }!
            var need: Int64 = 0
            if let cost = reservation.estimatedCost {
                let paid = Self.paidShare(
                    cost: cost, unit: reservation.quotaUnit, covered: coveredUnits, needed: neededUnits)
                guard let converted = convert(paid, b.limit.currency) else {
                    return .rejected(
                        Rejection(
                            kind: .noExchangeRate,
                            message:
                                "The budget is in \(b.limit.currency) but '\(request.model)' is priced in \(cost.currency), and the price book has no rate between them."
                        ))
                }
                need = converted.nanos
            }
            let counter = counters[key] ?? Counter()
            if b.hard && counter.used + counter.reserved + need > b.limit.nanos {
                let remaining = max(0, b.limit.nanos - counter.used - counter.reserved)
                return .rejected(
                    Rejection(
                        kind: .insufficientQuota,
                        message:
                            "You exceeded your current quota: this request is estimated at "
                            + "\(Money(nanos: need, currency: b.limit.currency).decimalString) \(b.limit.currency) "
                            + "and \(Money(nanos: remaining, currency: b.limit.currency).decimalString) remains of the "
                            + "\(b.period.rawValue)ly budget.",
                        retryAfterSeconds: Int((key.periodEnd!.timeIntervalSince(now)).rounded(.up))))
            }
            reservation.budget = .init(key: key, units: need, allowance: b.limit.nanos)
            reservation.budgetPolicy = b
        }

        // Commit: all checks passed, so take everything at once.
        for part in [reservation.free, reservation.grant, reservation.budget].compactMap({ $0 }) {
            counters[part.key, default: Counter()].reserved += part.units
        }
        for scope in reservation.scopes {
            windows[scope, default: RateWindow()].add(tokens: estimateTokens, now: now)
            inflight[scope, default: 0] += 1
        }
        return .admitted(reservation, status)
    }

    // MARK: Settle

    /// Replaces the reservation with the actual usage; returns how its cost splits into free and paid,
    /// and the budget alerts this crossing fires (each threshold once per period).
    public mutating func settle(
        _ reservation: Reservation, actual: Usage, cost: Money?, convert: (Money, String) -> Money?
    ) -> ChargeSplit {
        for scope in reservation.scopes { inflight[scope, default: 1] -= 1 }
        var split = ChargeSplit(freeCost: cost.map { .zero($0.currency) }, charged: cost)
        let tokens = Int64(actual.prompt + actual.completion)
        var needed: Int64 = 0
        if let unit = reservation.quotaUnit {
            needed = Self.units(unit, tokens: Int(tokens), cost: cost, convert)
        }
        var covered: Int64 = 0
        for (index, part) in [reservation.free, reservation.grant].enumerated() {
            guard let part else { continue }
            var counter = counters[part.key] ?? Counter()
            counter.reserved -= part.units
            let take = min(needed - covered, max(0, part.allowance - counter.used - counter.reserved))
            counter.used += take
            counters[part.key] = counter
            covered += take
            if index == 0 { split.freeUnits = take } else { split.grantUnits = take }
        }
        if let cost, covered > 0 {
            let paid = Self.paidShare(cost: cost, unit: reservation.quotaUnit, covered: covered, needed: needed)
            split.charged = paid
            split.freeCost = Money(nanos: cost.nanos - paid.nanos, currency: cost.currency)
        }
        if let part = reservation.budget, let budget = reservation.budgetPolicy {
            var counter = counters[part.key] ?? Counter()
            counter.reserved -= part.units
            let charge = split.charged.flatMap { convert($0, budget.limit.currency) } ?? .zero(budget.limit.currency)
            let before = counter.used
            counter.used += charge.nanos
            counters[part.key] = counter
            split.budgetCharge = charge
            for percent in budget.alertPercents {
                let threshold = (Int128(budget.limit.nanos) * Int128(percent)) / 100
                guard Int128(before) < threshold || budget.limit.nanos == 0, Int128(counter.used) >= threshold,
                    charge.nanos > 0 || budget.limit.nanos == 0
                else { continue }
                let id = "\(reservation.tenantID)|\(part.key.periodStart!.timeIntervalSince1970)|\(percent)"
                if firedAlerts.insert(id).inserted {
                    split.alerts.append(
                        BudgetAlert(
                            tenantID: reservation.tenantID, percent: percent,
                            used: Money(nanos: counter.used, currency: budget.limit.currency), limit: budget.limit,
                            periodStart: part.key.periodStart!, hard: budget.hard))
                }
            }
        }
        return split
    }

    /// What remains of each pool for this tenant now (for `quota show` and `/v1/usage`).
    public func remaining(_ tenant: TenantContext, model: String?, now: Date) -> [CounterKey: (
        used: Int64, reserved: Int64
    )] {
        var out: [CounterKey: (Int64, Int64)] = [:]
        for key in Self.keys(tenant, model: model ?? "", now: now) {
            let c = counters[key] ?? Counter()
            out[key] = (c.used, c.reserved)
        }
        return out
    }

    // MARK: Arithmetic

    /// A request's size in the quota's unit: tokens, or its cost in the credit's currency.
    static func units(_ unit: FreeQuota.Unit, tokens: Int, cost: Money?, _ convert: (Money, String) -> Money?) -> Int64
    {
        switch unit {
        case .tokens: return Int64(tokens)
        case .credit(let currency): return cost.flatMap { convert($0, currency) }?.nanos ?? 0
        }
    }

    /// The part of `cost` the free quota does not cover. Tokens split pro rata, with the free share
    /// rounded down so the paid share is never understated; credit comes off the cost directly.
    static func paidShare(cost: Money, unit: FreeQuota.Unit?, covered: Int64, needed: Int64) -> Money {
        guard covered > 0, needed > 0, let unit else { return cost }
        switch unit {
        case .tokens:
            let free = Int64((Int128(cost.nanos) * Int128(min(covered, needed))) / Int128(needed))
            return Money(nanos: cost.nanos - free, currency: cost.currency)
        case .credit(let currency):
            guard currency == cost.currency else { return cost }
            return Money(nanos: max(0, cost.nanos - covered), currency: cost.currency)
        }
    }

    static func status(_ window: RateWindow, _ limits: RateLimits, _ tokens: Int) -> RateLimitStatus {
        RateLimitStatus(
            limitRequests: limits.requestsPerMinute,
            remainingRequests: limits.requestsPerMinute.map { max(0, $0 - window.requests - 1) },
            limitTokens: limits.tokensPerMinute,
            remainingTokens: limits.tokensPerMinute.map { max(0, $0 - window.tokens - tokens) })
    }
}
