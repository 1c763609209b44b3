import Foundation
import Logging
import Metering
import PostgresNIO
import Synchronization

/// The policy state shared by replicas on PostgreSQL: counters, reservations and rate windows
/// (`docs/scale-out.md`).
///
/// Admissions and settlements run the same ``PolicyEngine`` as the embedded store, against the rows they
/// touch, in transactions of two statements: one locks and reads those rows (`SELECT … FOR UPDATE`, always
/// rate scopes first, then counters in key order), the engine decides in memory, one writes the new
/// amounts back. Two replicas racing for the last unit of a budget therefore take turns on that row, and
/// the second sees what the first reserved. Concurrent admissions on one replica share a transaction, as
/// concurrent records share a commit (``GroupCommit``); settlement runs inside the ledger's commit
/// (``PostgresLedger``), so counters and records change together or not at all.
final class PostgresPolicyStore: Sendable {
    /// A counter's row key.
    struct Identity: Hashable, Sendable {
        var tenant: String
        var pool: String
        var periodStart: Int64
        var currency: String

        init(_ key: PolicyEngine.CounterKey) {
            tenant = key.tenantID
            pool = key.pool.rawValue
            periodStart = key.periodStart.map(SQLiteLedger.microseconds) ?? PostgresPolicyStore.noPeriod
            currency = key.currency ?? ""
        }

        init(tenant: String, pool: String, periodStart: Int64, currency: String) {
            self.tenant = tenant
            self.pool = pool
            self.periodStart = periodStart
            self.currency = currency
        }

        var name: String { "c|\(tenant)|\(pool)|\(periodStart)|\(currency)" }
    }

    /// One admission waiting for the next shared transaction.
    struct Admit: Sendable {
        var context: TenantContext
        var request: AdmissionRequest
        var convert: @Sendable (Money, String) -> Money?
    }

    /// One record to store and the reservation it settles, with the exchange rates at its start.
    struct Settling: Sendable {
        var record: BillingRecord
        var reservation: Reservation?
        var convert: @Sendable (Money, String) -> Money?
    }

    /// The grant's period start: it has none.
    static let noPeriod = Int64.min

    let store: PostgresStore
    /// Written on each reservation, to tell whose in-flight holds a row is.
    let replica: String
    let reservationTTL: TimeInterval
    /// Counter rows and rate scopes this process knows exist (created once, never deleted).
    private let ensured = Mutex<Set<String>>([])
    private let admissions: GroupCommit<Admit, Admission>

    init(store: PostgresStore, reservationTTL: TimeInterval = 3600, replica: String = defaultReplicaName()) {
        self.store = store
        self.replica = replica
        self.reservationTTL = reservationTTL
        // Not retried: a batch whose COMMIT answer was lost would reserve twice (held until expiry).
        admissions = GroupCommit(batchLimit: 256, attempts: 1, onCommit: { _ in }) { items, _ in
            try await Self.admit(items, store: store, reservationTTL: reservationTTL, replica: replica)
        }
    }

    static func defaultReplicaName() -> String {
        "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)"
    }

    var logger: Logger { store.logger }

    // MARK: Admit

    /// Admits or rejects the request against the shared counters; an admitted request's reservation is
    /// stored with this replica's name and its expiry. A request no quota, budget or rate limit holds
    /// is decided without the database.
    func admit(
        _ context: TenantContext, _ request: AdmissionRequest, convert: @escaping @Sendable (Money, String) -> Money?
    ) async throws -> Admission {
        let keys = PolicyEngine.keys(context, model: request.model, now: request.now)
        let scopes = PolicyEngine.rateScopes(context)
        if keys.isEmpty && scopes.isEmpty {
            var engine = PolicyEngine(reservationTTL: reservationTTL)
            let admission = engine.admit(context, request, convert: convert)
            guard case .admitted(var reservation, let status) = admission else { return admission }
            // Held nowhere: settlement has nothing to release.
            reservation.id = 0
            return .admitted(reservation, status)
        }
        try await ensure(counters: keys, scopes: scopes.map(\.scope))
        return try await admissions.append(Admit(context: context, request: request, convert: convert))
    }

    /// Creates the rows a request needs that this process has not seen yet. A new counter starts from
    /// the ledger's sum, as the embedded store's counters do; a row another replica created first is
    /// left as it is.
    func ensure(counters keys: [PolicyEngine.CounterKey], scopes: [String]) async throws {
        for key in keys {
            let id = Identity(key)
            guard !ensured.withLock({ $0.contains(id.name) }) else { continue }
            let used = try await store.counterTotal(key)
            _ = try await store.client.query(
                """
                INSERT INTO policy_counters (tenant_id, pool, period_start, currency, used)
                VALUES (\(id.tenant), \(id.pool), \(id.periodStart), \(id.currency), \(used))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            _ = ensured.withLock { $0.insert(id.name) }
        }
        let newScopes = scopes.filter { scope in !ensured.withLock { $0.contains("s|" + scope) } }
        if !newScopes.isEmpty {
            _ = try await store.client.query(
                "INSERT INTO policy_rates (scope) SELECT unnest(\(newScopes)::text[]) ON CONFLICT DO NOTHING",
                logger: logger)
            ensured.withLock { set in for scope in newScopes { set.insert("s|" + scope) } }
        }
    }

    /// Decides a batch of admissions in one transaction: lock and read every row they touch, admit each
    /// in turn on the engine (so they see each other's reservations, as on one node), write back.
    private static func admit(
        _ items: [Admit], store: PostgresStore, reservationTTL: TimeInterval, replica: String
    ) async throws -> [Admission] {
        var keys: [PolicyEngine.CounterKey] = []
        var scopes: [String: RateLimits] = [:]
        var concurrencyTenants = Set<String>()
        for item in items {
            keys += PolicyEngine.keys(item.context, model: item.request.model, now: item.request.now)
            for (scope, limits) in PolicyEngine.rateScopes(item.context) {
                scopes[scope] = limits
                if limits.concurrent != nil { concurrencyTenants.insert(item.context.tenantID) }
            }
        }
        let latest = items.map(\.request.now).max() ?? Date()
        let windowStart = Int64((latest.timeIntervalSince1970 / 60).rounded(.down)) * 60
        return try await store.inTransaction { connection in
            let snapshot = try await Snapshot.lock(
                counters: Set(keys.map(Identity.init)), scopes: scopes.keys.sorted(), on: connection)
            let inflight = try await Snapshot.inflight(tenants: concurrencyTenants, on: connection)
            var engine = PolicyEngine(reservationTTL: reservationTTL)
            try snapshot.load(keys, into: &engine)
            // A scope's window never goes back: a row already in a later minute (another replica's clock,
            // or requests that started earlier) is this batch's minute for that scope.
            var windows: [String: Int64] = [:]
            for scope in scopes.keys {
                let row = snapshot.rates[scope]
                let start = max(windowStart, row?.windowStart ?? windowStart)
                windows[scope] = start
                let current = row.flatMap { $0.windowStart == start ? $0 : nil }
                engine.loadRate(
                    scope: scope, windowStart: Date(timeIntervalSince1970: TimeInterval(start)),
                    requests: Int(min(current?.requests ?? 0, Int64(Int32.max))),
                    tokens: Int(min(current?.tokens ?? 0, .max / 2)), inflight: inflight[scope] ?? 0)
            }
            var out: [Admission] = []
            var admitted: [(index: Int, reservation: Reservation)] = []
            let admittedAt = Date()
            for item in items {
                var request = item.request
                request.admittedAt = max(request.admittedAt, admittedAt)
                let admission = engine.admit(item.context, request, convert: item.convert)
                if case .admitted(let r, _) = admission { admitted.append((out.count, r)) }
                out.append(admission)
            }
            guard !admitted.isEmpty else { return out }
            var write = Write()
            for key in keys { if let c = engine.counter(key) { write.counters[Identity(key)] = c } }
            for (scope, _) in scopes {
                let w = engine.rateWindow(scope: scope)
                write.rates[scope] = (windows[scope] ?? windowStart, Int64(w.requests), Int64(w.tokens))
            }
            write.reservations = admitted.map(\.reservation)
            let ids = try await write.run(replica: replica, on: connection)
            for ((index, reservation), id) in zip(admitted, ids) {
                guard case .admitted(_, let status) = out[index] else { continue }
                var held = reservation
                held.id = id
                out[index] = .admitted(held, status)
            }
            return out
        }
    }

    // MARK: Settle

    /// Settles every item's reservation and stores the records, in one transaction: releases the
    /// reservations still held (one the sweeper released is not released twice), locks the counters they
    /// touch, runs the engine's settlement in order, writes the counters and inserts the records.
    /// Returns each record with its split filled in. In a `retried` batch, a record an earlier attempt
    /// stored (its commit's answer was lost) is neither settled nor stored again.
    static func settleAndInsert(
        _ items: [Settling], retried: Bool, sinks: [String] = [], on connection: PostgresConnection
    ) async throws -> [(BillingRecord, ChargeSplit?)] {
        let shared = items.compactMap(\.reservation).filter { $0.id != 0 }
        let keys = shared.flatMap { r in [r.free, r.grant, r.budget].compactMap { $0?.key } }
        var snapshot = try await Snapshot.lock(
            release: shared.map { Int64(bitPattern: $0.id) }, counters: Set(keys.map(Identity.init)), on: connection)
        if retried {
            // After the locks: an earlier attempt still committing held them, so this sees its records.
            snapshot.stored = try await Snapshot.stored(items.map(\.record.id), on: connection)
        }
        var engine = PolicyEngine()
        try snapshot.load(keys, into: &engine)
        for r in shared where snapshot.held.contains(r.id) { engine.hold(r) }

        var out: [(BillingRecord, ChargeSplit?)] = []
        var write = Write()
        for item in items {
            var record = item.record
            guard !snapshot.stored.contains(record.id) else {
                out.append((record, nil))
                continue
            }
            guard let reservation = item.reservation else {
                write.records.append(record)
                out.append((record, nil))
                continue
            }
            let split = engine.settle(reservation, actual: record.usage, cost: record.cost, convert: item.convert)
            record.apply(split)
            write.records.append(record)
            out.append((record, split))
        }
        for key in keys { if let c = engine.counter(key) { write.counters[Identity(key)] = c } }
        let announced = try await announceOnce(out, on: connection)
        write.sinks = sinks
        _ = try await write.run(replica: "", on: connection)
        return announced
    }

    /// Keeps only the alerts no replica has announced yet for their period, and marks them announced
    /// (in the same transaction, so an alert is announced once its record is stored, and once only).
    private static func announceOnce(_ settled: [(BillingRecord, ChargeSplit?)], on connection: PostgresConnection)
        async throws -> [(BillingRecord, ChargeSplit?)]
    {
        let alerts = settled.flatMap { $0.1?.alerts ?? [] }
        guard !alerts.isEmpty else { return settled }
        let rows = try await connection.query(
            """
            INSERT INTO policy_alerts (tenant_id, period_start, percent)
            SELECT * FROM unnest(\(alerts.map(\.tenantID))::text[],
                                 \(alerts.map { SQLiteLedger.microseconds($0.periodStart) })::int8[],
                                 \(alerts.map { Int32(clamping: $0.percent) })::int4[])
            ON CONFLICT DO NOTHING RETURNING tenant_id, period_start, percent
            """, logger: Logger(label: "gateway.policy"))
        var fresh = Set<String>()
        for try await (tenant, start, percent) in rows.decode((String, Int64, Int32).self) {
            fresh.insert("\(tenant)|\(start)|\(percent)")
        }
        return settled.map { record, split in
            guard var split else { return (record, nil) }
            split.alerts = split.alerts.filter {
                fresh.remove("\($0.tenantID)|\(SQLiteLedger.microseconds($0.periodStart))|\($0.percent)") != nil
            }
            return (record, split)
        }
    }
}
