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

        public init(
            pool: Pool, tenantID: String, periodStart: Date? = nil, periodEnd: Date? = nil, currency: String? = nil
        ) {
            self.pool = pool
            self.tenantID = tenantID
            self.periodStart = periodStart
            self.periodEnd = periodEnd
            self.currency = currency
        }
    }

    struct Counter {
        var used: Int64 = 0
        var reserved: Int64 = 0
    }

    private var counters: [CounterKey: Counter] = [:]
    private var windows: [String: RateWindow] = [:]
    private var inflight: [String: Int] = [:]
    private var firedAlerts: Set<String> = []
    /// Admitted and not yet settled, by reservation id; what the sweeper releases when one outlives
    /// its expiry.
    private var outstanding: [UInt64: Reservation] = [:]
    private var nextReservationID: UInt64 = 1
    /// How long a reservation may stay outstanding before the sweeper releases it.
    public var reservationTTL: TimeInterval

    public init(reservationTTL: TimeInterval = 3600) {
        self.reservationTTL = reservationTTL
    }

    /// Reservations admitted and not yet settled or swept.
    public var outstandingCount: Int { outstanding.count }

    // MARK: Rebuilding from the ledger

    /// The counters a request of this tenant for `model` at `now` touches that are not loaded yet.
    public func missingCounters(_ tenant: TenantContext, model: String, now: Date) -> [CounterKey] {
        Self.keys(tenant, model: model, now: now).filter { counters[$0] == nil }
    }

    /// Sets a counter's settled total from the ledger. Call before the first admission that uses it.
    public mutating func restore(_ key: CounterKey, used: Int64) {
        if counters[key] == nil { counters[key] = Counter(used: used) }
    }

    /// The counters a request of this tenant for `model` at `now` draws on, in the order free, grant, budget.
    public static func keys(_ tenant: TenantContext, model: String, now: Date) -> [CounterKey] {
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

    /// The rate-limit scopes that hold this tenant and key (`t|ID`, `k|ID`), with their limits; scopes
    /// without limits are left out.
    public static func rateScopes(_ tenant: TenantContext) -> [(scope: String, limits: RateLimits)] {
        [("t|" + tenant.tenantID, tenant.plan.tenantLimits), ("k|" + tenant.keyID, tenant.keyLimits)]
            .filter { !$0.1.isEmpty }
    }

    // MARK: State held elsewhere

    /// Loads a counter's settled and reserved amounts as a shared store holds them (read under its lock),
    /// so that one admit or settle runs against them here.
    public mutating func load(_ key: CounterKey, used: Int64, reserved: Int64) {
        counters[key] = Counter(used: used, reserved: reserved)
    }

    /// A counter's amounts now (after an admit or settle, what a shared store writes back).
    public func counter(_ key: CounterKey) -> (used: Int64, reserved: Int64)? {
        counters[key].map { ($0.used, $0.reserved) }
    }

    /// Loads a scope's window as a shared store counts it: a fixed window from `start`, and the requests
    /// in flight.
    public mutating func loadRate(scope: String, windowStart: Date, requests: Int, tokens: Int, inflight: Int) {
        var window = RateWindow()
        window.load(start: windowStart, requests: requests, tokens: tokens)
        windows[scope] = window
        self.inflight[scope] = inflight
    }

    /// Requests and tokens a scope's window holds now (after an admit, what a shared store writes back).
    public func rateWindow(scope: String) -> (requests: Int, tokens: Int) {
        windows[scope].map { ($0.requests, $0.tokens) } ?? (0, 0)
    }

    /// Registers a reservation admitted elsewhere and still held in a shared store, so that settling it
    /// here releases what it reserved.
    public mutating func hold(_ reservation: Reservation) {
        outstanding[reservation.id] = reservation
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
        let estimateTokens: Int
        let estimatedCost: Money?
        do {
            estimateTokens = try request.estimate.prompt.checkedAdding(request.estimate.completion, "the estimate")
            estimatedCost = try request.price?.cost(of: request.estimate)
        } catch {
            return .rejected(Self.tooLarge(error))
        }

        // Rate limits: tenant, then key.
        let scopes = Self.rateScopes(tenant)
        var status: RateLimitStatus?
        for (scope, limits) in scopes {
            var window = windows[scope] ?? RateWindow()
            window.prune(now: now)
            windows[scope] = window
            if let c = limits.concurrent, (inflight[scope] ?? 0) >= c {
                return .rejected(
                    Rejection(
                        kind: .rateLimited, message: "Too many concurrent requests (limit \(c)); try again shortly.",
                        retryAfterSeconds: 1, rateLimits: Self.status(window, limits, estimateTokens)))
            }
            let wait = window.retryAfter(now: now, limits: limits, needTokens: estimateTokens)
            if wait > 0 {
                let which =
                    limits.requestsPerMinute.map { window.requests >= $0 } ?? false
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
            estimatedCost: estimatedCost, scopes: [])
        reservation.scopes = scopes.map(\.scope)
        let keys = Self.keys(tenant, model: request.model, now: now)

        // Free quota first: the periodic allowance, then the grant. Both pools are attached whenever
        // they apply, even when the estimate does not reach them, so that settlement can draw the
        // actual usage from them in order.
        var coveredUnits: Int64 = 0
        var neededUnits: Int64 = 0
        if let q = plan.freeQuota, q.applies(toModel: request.model) {
            guard let needed = Self.units(q.unit, tokens: estimateTokens, cost: estimatedCost, convert) else {
                return .rejected(Self.noRate(from: estimatedCost?.currency, to: q.unit, model: request.model))
            }
            neededUnits = needed
            let freeKey = keys.first { $0.pool == .free }!
            let allowance = q.allowance(at: now, timeZone: tenant.timeZone)
            let take = min(neededUnits, Self.room(allowance, counters[freeKey] ?? Counter()))
            reservation.free = .init(key: freeKey, units: take, allowance: allowance)
            coveredUnits = take
            if Self.grantActive(q, tenant: tenant, now: now), let grantKey = keys.first(where: { $0.pool == .grant }) {
                let g = min(neededUnits - take, Self.room(q.grantAmount, counters[grantKey] ?? Counter()))
                reservation.grant = .init(key: grantKey, units: g, allowance: q.grantAmount)
                coveredUnits += g
            }
            reservation.quotaUnit = q.unit
        }

        // Then the budget, for whatever the free quota does not cover.
        if let b = plan.budget {
            let key = keys.first { $0.pool == .budget }!
            var need: Int64 = 0
            if let cost = estimatedCost {
                let paid = Self.paidShare(cost: cost, covered: coveredUnits, needed: neededUnits)
                guard let converted = convert(paid, b.limit.currency) else {
                    return .rejected(
                        Self.noRate(
                            from: cost.currency, to: .credit(currency: b.limit.currency),
                            model: request.model, what: "budget"))
                }
                need = converted.nanos
            }
            let counter = counters[key] ?? Counter()
            // In 128 bits: three 64-bit amounts cannot wrap there.
            if b.hard && Int128(counter.used) + Int128(counter.reserved) + Int128(need) > Int128(b.limit.nanos) {
                let remaining = Self.room(b.limit.nanos, counter)
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

        // Commit: all checks passed, so take everything at once. Reserved amounts saturate rather than
        // trap: a soft budget admits any number of requests, and a saturated counter still refuses.
        for part in [reservation.free, reservation.grant, reservation.budget].compactMap({ $0 }) {
            counters[part.key, default: Counter()].reserved.saturatingAdd(part.units)
        }
        for scope in reservation.scopes {
            windows[scope, default: RateWindow()].add(tokens: estimateTokens, now: now)
            inflight[scope, default: 0] += 1
        }
        reservation.id = nextReservationID
        nextReservationID += 1
        reservation.expiresAt = request.admittedAt.addingTimeInterval(reservationTTL)
        outstanding[reservation.id] = reservation
        return .admitted(reservation, status)
    }

    // MARK: Settle

    /// Replaces the reservation with the actual usage; returns how its cost splits into free and paid,
    /// and the budget alerts this crossing fires (each threshold once per period).
    ///
    /// The actual usage is drawn from the free allowance, then the grant, then the budget, whatever the
    /// estimate had attached. A reservation the sweeper already released (or one settled before) is
    /// not released again; its usage still counts.
    public mutating func settle(
        _ reservation: Reservation, actual: Usage, cost: Money?, convert: (Money, String) -> Money?
    ) -> ChargeSplit {
        let held = outstanding.removeValue(forKey: reservation.id) != nil
        if held {
            for scope in reservation.scopes { inflight[scope, default: 1] -= 1 }
        }
        var split = ChargeSplit(freeCost: cost.map { .zero($0.currency) }, charged: cost)
        let tokens = actual.prompt.saturatingAdding(actual.completion)
        let needed = reservation.quotaUnit.flatMap { Self.units($0, tokens: tokens, cost: cost, convert) } ?? 0
        var covered: Int64 = 0
        for (index, part) in [reservation.free, reservation.grant].enumerated() {
            guard let part else { continue }
            var counter = counters[part.key] ?? Counter()
            if held { counter.reserved.saturatingSubtract(part.units) }
            let take = min(needed - covered, Self.room(part.allowance, counter))
            counter.used.saturatingAdd(take)
            counters[part.key] = counter
            covered += take
            if index == 0 { split.freeUnits = take } else { split.grantUnits = take }
        }
        if let cost, covered > 0 {
            let paid = Self.paidShare(cost: cost, covered: covered, needed: needed)
            split.charged = paid
            split.freeCost = Money(nanos: cost.nanos - paid.nanos, currency: cost.currency)
        }
        if let part = reservation.budget, let budget = reservation.budgetPolicy {
            var counter = counters[part.key] ?? Counter()
            if held { counter.reserved.saturatingSubtract(part.units) }
            let charge = split.charged.flatMap { convert($0, budget.limit.currency) } ?? .zero(budget.limit.currency)
            let before = counter.used
            counter.used.saturatingAdd(charge.nanos)
            counters[part.key] = counter
            split.budgetCharge = charge
            // A threshold fires when a charge carries the used amount across it; nothing charged
            // crosses nothing, so a zero budget alerts on its first paid request, not on free ones.
            for percent in budget.alertPercents where charge.nanos > 0 {
                let threshold = (Int128(budget.limit.nanos) * Int128(percent)) / 100
                guard Int128(before) < threshold || (threshold == 0 && before == 0),
                    Int128(counter.used) >= threshold
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

    /// Takes a settlement's usage back out of the counters, for a record the ledger refused: the
    /// counters then still equal the sum of the stored records. The reservation stays released.
    public mutating func revert(_ reservation: Reservation, _ split: ChargeSplit) {
        if let part = reservation.free { counters[part.key]?.used.saturatingSubtract(split.freeUnits) }
        if let part = reservation.grant { counters[part.key]?.used.saturatingSubtract(split.grantUnits) }
        if let part = reservation.budget, let charge = split.budgetCharge {
            counters[part.key]?.used.saturatingSubtract(charge.nanos)
        }
    }

    // MARK: Expiry

    /// Releases every reservation whose expiry has passed (a request whose owner never settled it) and
    /// returns them, so the caller can log and count each.
    public mutating func sweep(now: Date) -> [Reservation] {
        let expired = outstanding.values.filter { $0.expiresAt <= now }
        for reservation in expired {
            outstanding[reservation.id] = nil
            for scope in reservation.scopes { inflight[scope, default: 1] -= 1 }
            for part in [reservation.free, reservation.grant, reservation.budget].compactMap({ $0 }) {
                counters[part.key]?.reserved.saturatingSubtract(part.units)
            }
        }
        return expired
    }

    /// Requests in flight for a tenant (`t|ID`) or key (`k|ID`) scope, as the concurrency limit sees them.
    public func inflight(scope: String) -> Int { inflight[scope] ?? 0 }

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

    /// What remains of a pool: its allowance less what is used and reserved, never negative.
    static func room(_ allowance: Int64, _ counter: Counter) -> Int64 {
        max(0, allowance.saturatingSubtracting(counter.used).saturatingSubtracting(counter.reserved))
    }

    static func grantActive(_ q: FreeQuota, tenant: TenantContext, now: Date) -> Bool {
        q.grantAmount > 0 && now < tenant.createdAt.addingTimeInterval(Double(q.grantDays) * 86_400)
    }

    /// A request's size in the quota's unit: tokens, or its cost in the credit's currency (through the
    /// dated exchange rate when the model is priced in another). Nil when the book has no such rate.
    static func units(_ unit: FreeQuota.Unit, tokens: Int, cost: Money?, _ convert: (Money, String) -> Money?)
        -> Int64?
    {
        switch unit {
        case .tokens: return Int64(tokens)
        case .credit(let currency):
            guard let cost else { return 0 }
            return convert(cost, currency)?.nanos
        }
    }

    /// The part of `cost` the free quota does not cover, when it covers `covered` of the `needed` units.
    /// The split is pro rata in either unit (tokens, or credit in whatever currency), with the free share
    /// rounded down so the paid share is never understated; credit in the cost's own currency comes off
    /// the cost exactly.
    static func paidShare(cost: Money, covered: Int64, needed: Int64) -> Money {
        guard covered > 0, needed > 0 else { return cost }
        let free = Int64((Int128(cost.nanos) * Int128(min(covered, needed))) / Int128(needed))
        return Money(nanos: cost.nanos - free, currency: cost.currency)
    }

    static func tooLarge(_ error: ArithmeticOverflow) -> Rejection {
        Rejection(kind: .requestTooLarge, message: "This request is too large to admit: \(error.description).")
    }

    static func noRate(from currency: String?, to unit: FreeQuota.Unit, model: String, what: String = "free credit")
        -> Rejection
    {
        let target: String
        switch unit {
        case .credit(let c): target = c
        case .tokens: target = "tokens"
        }
        return Rejection(
            kind: .noExchangeRate,
            message:
                "The \(what) is in \(target) but '\(model)' is priced in \(currency ?? "another currency"), "
                + "and the price book has no rate between them.")
    }

    static func status(_ window: RateWindow, _ limits: RateLimits, _ tokens: Int) -> RateLimitStatus {
        RateLimitStatus(
            limitRequests: limits.requestsPerMinute,
            remainingRequests: limits.requestsPerMinute.map { max(0, $0 - window.requests - 1) },
            limitTokens: limits.tokensPerMinute,
            remainingTokens: limits.tokensPerMinute.map {
                max(0, $0.saturatingSubtracting(window.tokens).saturatingSubtracting(tokens))
            })
    }
}
