import Foundation
import Logging
import Metering
import Synchronization

/// The admit stage's adapter: plans from `policies/plans.yaml` with the tenant's overrides from the
/// store, the policy engine behind one lock, and counters rebuilt from the ledger on first use.
public final class PolicyService: Sendable {
    /// The estimate for a request that names no output limit and whose plan sets no cap.
    public static let defaultMaxOutput = 4096

    private let state: Mutex<PolicyEngine>
    private let policies: Mutex<(plans: PlanBook, prices: PriceBook)>
    private let store: any BillingStore
    private let notifier: AlertNotifier
    private let metrics: GatewayMetrics

    init(
        plans: PlanBook, prices: PriceBook, store: any BillingStore, notifier: AlertNotifier, metrics: GatewayMetrics,
        reservationTTL: TimeInterval = 3600
    ) {
        self.state = Mutex(PolicyEngine(reservationTTL: reservationTTL))
        self.policies = Mutex((plans, prices))
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
    }

    var plans: PlanBook { policies.withLock { $0.plans } }

    /// The price entry in force at `instant`, from the current price book.
    func price(for priceID: String, at instant: Date) -> PriceEntry? {
        policies.withLock { $0.prices.price(for: priceID, at: instant) }
    }

    /// Swaps in reloaded policies; requests already admitted settle against their own reservations.
    func replace(plans: PlanBook, prices: PriceBook) {
        policies.withLock { $0 = (plans, prices) }
    }

    /// The plan in force for this tenant and key: the named plan, with the store's overrides.
    func context(for tenant: Tenant, key: VirtualKey?) -> TenantContext {
        var plan = plans.plan(named: tenant.plan)
        if let budget = tenant.budget {
            plan.budget = Budget(
                limit: budget.limit, period: budget.period, hard: !budget.soft,
                alertPercents: plan.budget?.alertPercents ?? Budget.defaultAlertPercents)
        }
        if let own = tenant.quota {
            var quota = plan.freeQuota ?? FreeQuota(unit: own.unit, period: own.period, schedule: [])
            quota.unit = own.unit
            quota.period = own.period
            quota.schedule = [.init(year: 1970, month: 1, day: 1, amount: own.amount)]
            plan.freeQuota = quota
        }
        let keyLimits = key.map {
            RateLimits(
                requestsPerMinute: $0.requestsPerMinute, tokensPerMinute: $0.tokensPerMinute, concurrent: $0.concurrent)
        }
        return TenantContext(
            tenantID: tenant.id, keyID: key?.id ?? "", timeZone: TimeZone(identifier: tenant.timezone) ?? .gmt,
            createdAt: tenant.createdAt, plan: plan, keyLimits: keyLimits)
    }

    private func convert(at instant: Date) -> (Money, String) -> Money? {
        let prices = policies.withLock { $0.prices }
        return { money, currency in prices.convert(money, to: currency, at: instant) }
    }

    /// Loads the counters this request needs from the ledger if this process has not seen them yet.
    private func ensureCounters(_ context: TenantContext, model: String, now: Date) async throws {
        let missing = state.withLock { $0.missingCounters(context, model: model, now: now) }
        guard !missing.isEmpty else { return }
        let store = store
        let totals = try await offEventLoop {
            var totals: [(PolicyEngine.CounterKey, Int64)] = []
            for key in missing { totals.append((key, try await store.counterTotal(key))) }
            return totals
        }
        state.withLock { engine in
            for (key, used) in totals { engine.restore(key, used: used) }
        }
    }

    func admit(_ key: AuthenticatedKey, _ request: AdmissionRequest) async throws -> Admission {
        let context = context(for: key.tenant, key: key.key)
        try await ensureCounters(context, model: request.model, now: request.now)
        let convert = convert(at: request.now)
        return state.withLock { $0.admit(context, request, convert: convert) }
    }

    /// Releases reservations that outlived their expiry (their requests never settled) and returns them.
    func sweepExpired(now: Date = Date()) -> [Reservation] {
        state.withLock { $0.sweep(now: now) }
    }

    /// Requests admitted and not yet settled.
    var outstandingReservations: Int { state.withLock { $0.outstandingCount } }

    /// Requests in flight for a key, as its concurrency limit counts them.
    func inflight(keyID: String) -> Int { state.withLock { $0.inflight(scope: "k|" + keyID) } }

    /// Settles the reservation against the record's usage and writes the split into the record. The
    /// returned split is what ``revert(_:_:)`` takes back if the record is not stored.
    func settle(_ record: inout BillingRecord, reservation: Reservation?) -> ChargeSplit? {
        guard let reservation else { return nil }
        let convert = convert(at: record.startedAt)
        let split = state.withLock {
            $0.settle(reservation, actual: record.usage, cost: record.cost, convert: convert)
        }
        record.freeUnits = split.freeUnits
        record.grantUnits = split.grantUnits
        record.freeCost = split.freeCost
        record.charged = split.charged
        record.budgetCharge = split.budgetCharge
        return split
    }

    /// Alerts fire once the record that crossed the threshold is stored.
    func announce(_ split: ChargeSplit) {
        for alert in split.alerts {
            metrics.budgetAlert(percent: alert.percent)
            notifier.notify(alert)
        }
    }

    /// A settled record the ledger refused: its usage leaves the counters again.
    func revert(_ reservation: Reservation, _ split: ChargeSplit) {
        state.withLock { $0.revert(reservation, split) }
    }

    /// Used and reserved amounts of each pool for the tenant now (quota show, `/v1/usage`).
    func standing(tenant: Tenant, now: Date = Date()) async throws -> [(PolicyEngine.CounterKey, Int64, Int64, Int64)] {
        let context = context(for: tenant, key: nil)
        try await ensureCounters(context, model: "", now: now)
        let state = state.withLock { $0.remaining(context, model: nil, now: now) }
        return state.map { key, value in
            let limit: Int64
            switch key.pool {
            case .free: limit = context.plan.freeQuota?.allowance(at: now, timeZone: context.timeZone) ?? 0
            case .grant: limit = context.plan.freeQuota?.grantAmount ?? 0
            case .budget: limit = context.plan.budget?.limit.nanos ?? 0
            }
            return (key, value.used, value.reserved, limit)
        }.sorted { $0.0.pool.rawValue < $1.0.pool.rawValue }
    }
}
