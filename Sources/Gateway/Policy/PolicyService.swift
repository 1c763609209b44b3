import Foundation
import Logging
import Metering
import Synchronization

/// The admit and settle stages' adapter: plans from `policies/plans.yaml` with the tenant's overrides
/// from the store, and the counters they run against.
///
/// On the embedded store the policy engine lives here behind one lock, its counters rebuilt from the
/// ledger on first use. On PostgreSQL (``PostgresLedger`` given) the counters, reservations and rate
/// windows are shared by every replica and each step is a transaction there (``PostgresPolicyStore``).
public final class PolicyService: Sendable {
    /// The estimate for a request that names no output limit and whose plan sets no cap.
    public static let defaultMaxOutput = 4096

    private let state: Mutex<PolicyEngine>
    private let policies: Mutex<(plans: PlanBook, prices: PriceBook)>
    private let store: any BillingStore
    private let notifier: AlertNotifier
    private let metrics: GatewayMetrics
    private let shared: PostgresLedger?
    /// Shared mode: reservations this replica admitted and has not settled (for `/metrics`).
    private let sharedOutstanding = Atomic(0)

    init(
        plans: PlanBook, prices: PriceBook, store: any BillingStore, notifier: AlertNotifier, metrics: GatewayMetrics,
        reservationTTL: TimeInterval = 3600, shared: PostgresLedger? = nil
    ) {
        self.state = Mutex(PolicyEngine(reservationTTL: reservationTTL))
        self.shared = shared
        self.policies = Mutex((plans, prices))
        self.store = store
        self.notifier = notifier
        self.metrics = metrics
    }

    var plans: PlanBook { policies.withLock { $0.plans } }

    /// The price book in force now (reloads swap it).
    var prices: PriceBook { policies.withLock { $0.prices } }

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

    private func convert(at instant: Date) -> @Sendable (Money, String) -> Money? {
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
        try await admit(context(for: key.tenant, key: key.key), request)
    }

    /// Admits for a context the caller already built (the pipeline needs its plan before admission).
    func admit(_ context: TenantContext, _ request: AdmissionRequest) async throws -> Admission {
        let convert = convert(at: request.now)
        if let shared {
            let admission = try await shared.policy.admit(context, request, convert: convert)
            if case .admitted(let r, _) = admission, r.id != 0 { sharedOutstanding.add(1, ordering: .relaxed) }
            return admission
        }
        try await ensureCounters(context, model: request.model, now: request.now)
        return state.withLock { $0.admit(context, request, convert: convert) }
    }

    /// Settles the request's reservation against the record's usage (the free and paid split goes into
    /// the record) and stores the record; returns the stored record and the split. On the embedded store
    /// the split is taken from the counters under their lock and given back if the ledger refuses the
    /// record; on PostgreSQL both happen in one transaction. Either way the counters never hold usage no
    /// stored record accounts for.
    func settleAndStore(_ record: BillingRecord, reservation: Reservation?, in ledger: any Ledger) async throws
        -> (BillingRecord, ChargeSplit?)
    {
        if let shared {
            let settled = try await shared.append(
                record, settling: reservation, convert: convert(at: record.startedAt))
            if let reservation, reservation.id != 0 { sharedOutstanding.subtract(1, ordering: .relaxed) }
            return settled
        }
        var record = record
        let split = settle(&record, reservation: reservation)
        do {
            try await ledger.append(record)
        } catch {
            if let reservation, let split { revert(reservation, split) }
            throw error
        }
        return (record, split)
    }

    /// Releases reservations that outlived their expiry (their requests never settled) and returns whose
    /// they were.
    func sweepExpired(now: Date = Date()) async throws -> [ExpiredReservation] {
        if let shared { return try await shared.policy.sweep(now: now) }
        return state.withLock { $0.sweep(now: now) }.map {
            .init(tenantID: $0.tenantID, keyID: $0.keyID, model: $0.model)
        }
    }

    /// Requests admitted and not yet settled (on PostgreSQL, those this replica admitted).
    var outstandingReservations: Int {
        shared == nil ? state.withLock { $0.outstandingCount } : sharedOutstanding.load(ordering: .relaxed)
    }

    /// Settles the reservation against the record's usage and writes the split into the record. The
    /// returned split is what ``revert(_:_:)`` takes back if the record is not stored.
    private func settle(_ record: inout BillingRecord, reservation: Reservation?) -> ChargeSplit? {
        guard let reservation else { return nil }
        let convert = convert(at: record.startedAt)
        let split = state.withLock {
            $0.settle(reservation, actual: record.usage, cost: record.cost, convert: convert)
        }
        record.apply(split)
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
    private func revert(_ reservation: Reservation, _ split: ChargeSplit) {
        state.withLock { $0.revert(reservation, split) }
    }

    /// Used and reserved amounts of each pool for the tenant now (quota show, `/v1/usage`).
    func standing(tenant: Tenant, now: Date = Date()) async throws -> [(PolicyEngine.CounterKey, Int64, Int64, Int64)] {
        let context = context(for: tenant, key: nil)
        let state: [PolicyEngine.CounterKey: (used: Int64, reserved: Int64)]
        if let shared {
            state = try await shared.policy.standing(context, now: now)
        } else {
            try await ensureCounters(context, model: "", now: now)
            state = self.state.withLock { $0.remaining(context, model: nil, now: now) }
        }
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
