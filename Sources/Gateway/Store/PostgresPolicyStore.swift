import Foundation
import Logging
import Metering
import PostgresNIO
import Synchronization

/// The policy state shared by replicas on PostgreSQL: counters, reservations and rate windows
/// (`docs/scale-out.md`).
///
/// Each admit and settle runs the same ``PolicyEngine`` as the embedded store, in one transaction,
/// against the rows it touches: it locks them (`SELECT … FOR UPDATE`, always in one order: rate scopes,
/// then counters sorted by key), decides in memory, and writes the new amounts back before it commits.
/// Two replicas racing for the last unit of a budget therefore take turns on that row, and the second
/// sees what the first reserved. Settlement runs inside the ledger's commit (``PostgresLedger``), so the
/// counters and the records change together or not at all.
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
    }

    /// The grant's period start: it has none.
    static let noPeriod = Int64.min

    let store: PostgresStore
    /// Written on each reservation, to tell whose in-flight holds a row is.
    let replica: String
    /// Counter rows and rate scopes this process knows exist (created once, never deleted).
    private let ensured = Mutex<Set<String>>([])

    init(store: PostgresStore, replica: String = PostgresPolicyStore.defaultReplicaName()) {
        self.store = store
        self.replica = replica
    }

    static func defaultReplicaName() -> String {
        "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)"
    }

    private var logger: Logger { store.logger }

    // MARK: Admit

    /// Admits or rejects the request against the shared counters; an admitted request's reservation is
    /// stored with this replica's name and its expiry. A request no quota, budget or rate limit holds
    /// is decided without the database.
    func admit(
        _ context: TenantContext, _ request: AdmissionRequest, reservationTTL: TimeInterval,
        convert: @escaping @Sendable (Money, String) -> Money?
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
        let windowStart = Int64((request.now.timeIntervalSince1970 / 60).rounded(.down)) * 60
        let replica = replica
        return try await store.inTransaction { connection in
            var engine = PolicyEngine(reservationTTL: reservationTTL)
            if !scopes.isEmpty {
                try await Self.loadRates(
                    scopes, context: context, windowStart: windowStart, into: &engine, on: connection)
            }
            let locked = try await Self.lock(Set(keys.map(Identity.init)), on: connection)
            for key in keys {
                guard let row = locked[Identity(key)] else { throw StoreError.invalid("a policy counter is missing") }
                engine.load(key, used: row.used, reserved: row.reserved)
            }
            let admission = engine.admit(context, request, convert: convert)
            guard case .admitted(var reservation, let status) = admission else { return admission }
            reservation.id = try await Self.write(
                reservation, engine: engine, windowStart: windowStart, replica: replica, on: connection)
            return .admitted(reservation, status)
        }
    }

    /// Creates the rows a request needs that this process has not seen yet. A new counter starts from
    /// the ledger's sum, as the embedded store's counters do; a row another replica created first is
    /// left as it is.
    private func ensure(counters keys: [PolicyEngine.CounterKey], scopes: [String]) async throws {
        let known = ensured.withLock { $0 }
        for key in keys {
            let id = Identity(key)
            let name = "c|\(id.tenant)|\(id.pool)|\(id.periodStart)|\(id.currency)"
            guard !known.contains(name) else { continue }
            let used = try await store.counterTotal(key)
            _ = try await store.client.query(
                """
                INSERT INTO policy_counters (tenant_id, pool, period_start, currency, used)
                VALUES (\(id.tenant), \(id.pool), \(id.periodStart), \(id.currency), \(used))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            _ = ensured.withLock { $0.insert(name) }
        }
        let newScopes = scopes.filter { !known.contains("s|" + $0) }
        if !newScopes.isEmpty {
            _ = try await store.client.query(
                "INSERT INTO policy_rates (scope) SELECT unnest(\(newScopes)::text[]) ON CONFLICT DO NOTHING",
                logger: logger)
            ensured.withLock { set in for scope in newScopes { set.insert("s|" + scope) } }
        }
    }

    /// Locks the scopes' rate rows and loads their current minute and the requests in flight (the
    /// reservations held, by tenant and by key) into `engine`.
    private static func loadRates(
        _ scopes: [(scope: String, limits: RateLimits)], context: TenantContext, windowStart: Int64,
        into engine: inout PolicyEngine, on connection: PostgresConnection
    ) async throws {
        let names = scopes.map(\.scope)
        var windows: [String: (Int64, Int64)] = [:]
        let rows = try await connection.query(
            """
            SELECT scope, window_start, requests, tokens FROM policy_rates WHERE scope = ANY(\(names)::text[])
            ORDER BY scope FOR UPDATE
            """, logger: Logger(label: "gateway.policy"))
        for try await (scope, start, requests, tokens) in rows.decode((String, Int64, Int64, Int64).self)
        where start == windowStart {
            windows[scope] = (requests, tokens)
        }
        var inflight = (tenant: 0, key: 0)
        if scopes.contains(where: { $0.limits.concurrent != nil }) {
            let counts = try await connection.query(
                """
                SELECT count(*), count(*) FILTER (WHERE key_id = \(context.keyID))
                FROM policy_reservations WHERE tenant_id = \(context.tenantID)
                """, logger: Logger(label: "gateway.policy"))
            for try await (tenant, key) in counts.decode((Int64, Int64).self) {
                inflight = (Int(clamping: tenant), Int(clamping: key))
            }
        }
        // Clamped: a window near Int.max would make the engine's `+ 1` checks meaningless.
        let cap = Int64(Int32.max)
        for scope in names {
            let (requests, tokens) = windows[scope] ?? (0, 0)
            engine.loadRate(
                scope: scope, windowStart: Date(timeIntervalSince1970: TimeInterval(windowStart)),
                requests: Int(min(requests, cap)), tokens: Int(min(tokens, .max / 2)),
                inflight: scope.hasPrefix("t|") ? inflight.tenant : inflight.key)
        }
    }

    /// Locks the counter rows, in key order, and returns their amounts.
    static func lock(_ ids: Set<Identity>, on connection: PostgresConnection) async throws -> [Identity: (
        used: Int64, reserved: Int64
    )] {
        guard !ids.isEmpty else { return [:] }
        let list = Array(ids)
        let rows = try await connection.query(
            """
            SELECT tenant_id, pool, period_start, currency, used, reserved FROM policy_counters
            WHERE (tenant_id, pool, period_start, currency) IN (
                SELECT * FROM unnest(\(list.map(\.tenant))::text[], \(list.map(\.pool))::text[],
                                     \(list.map(\.periodStart))::int8[], \(list.map(\.currency))::text[]))
            ORDER BY tenant_id, pool, period_start, currency FOR UPDATE
            """, logger: Logger(label: "gateway.policy"))
        var out: [Identity: (Int64, Int64)] = [:]
        for try await (t, p, s, c, used, reserved) in rows.decode((String, String, Int64, String, Int64, Int64).self) {
            out[Identity(tenant: t, pool: p, periodStart: s, currency: c)] = (used, reserved)
        }
        return out
    }

    /// Writes counters back with their new amounts (rows locked by ``lock(_:on:)``).
    static func update(_ values: [Identity: (used: Int64, reserved: Int64)], on connection: PostgresConnection)
        async throws
    {
        guard !values.isEmpty else { return }
        let list = Array(values)
        _ = try await connection.query(
            """
            UPDATE policy_counters c SET used = v.used, reserved = v.reserved
            FROM unnest(\(list.map(\.key.tenant))::text[], \(list.map(\.key.pool))::text[],
                        \(list.map(\.key.periodStart))::int8[], \(list.map(\.key.currency))::text[],
                        \(list.map(\.value.used))::int8[], \(list.map(\.value.reserved))::int8[])
                 AS v(tenant_id, pool, period_start, currency, used, reserved)
            WHERE c.tenant_id = v.tenant_id AND c.pool = v.pool AND c.period_start = v.period_start
              AND c.currency = v.currency
            """, logger: Logger(label: "gateway.policy"))
    }

    /// Writes an admission: the counters' new reserved amounts, the rate windows, and the reservation
    /// row; returns the reservation's id.
    private static func write(
        _ r: Reservation, engine: PolicyEngine, windowStart: Int64, replica: String, on connection: PostgresConnection
    ) async throws -> UInt64 {
        var counters: [Identity: (Int64, Int64)] = [:]
        for part in [r.free, r.grant, r.budget].compactMap({ $0 }) {
            if let c = engine.counter(part.key) { counters[Identity(part.key)] = c }
        }
        try await update(counters, on: connection)
        if !r.scopes.isEmpty {
            let windows = r.scopes.map { engine.rateWindow(scope: $0) }
            _ = try await connection.query(
                """
                UPDATE policy_rates p SET window_start = \(windowStart), requests = v.requests, tokens = v.tokens
                FROM unnest(\(r.scopes)::text[], \(windows.map { Int64($0.requests) })::int8[],
                            \(windows.map { Int64($0.tokens) })::int8[]) AS v(scope, requests, tokens)
                WHERE p.scope = v.scope
                """, logger: Logger(label: "gateway.policy"))
        }
        let rows = try await connection.query(
            """
            INSERT INTO policy_reservations (tenant_id, key_id, model, replica, created_at, expires_at,
                free_period, free_units, grant_units, budget_period, budget_currency, budget_units)
            VALUES (\(r.tenantID), \(r.keyID), \(r.model), \(replica), \(SQLiteLedger.microseconds(Date())),
                \(SQLiteLedger.microseconds(r.expiresAt)), \(r.free.map { Identity($0.key).periodStart }),
                \(r.free?.units ?? 0), \(r.grant?.units ?? 0), \(r.budget.map { Identity($0.key).periodStart }),
                \(r.budget?.key.currency), \(r.budget?.units ?? 0))
            RETURNING id
            """, logger: Logger(label: "gateway.policy"))
        for try await id in rows.decode(Int64.self) { return UInt64(id) }
        throw StoreError.invalid("the reservation was not stored")
    }

    // MARK: Settle

    /// One record to store and the reservation it settles, with the exchange rates at its start.
    struct Settling: Sendable {
        var record: BillingRecord
        var reservation: Reservation?
        var convert: @Sendable (Money, String) -> Money?
    }

    /// Settles every item's reservation inside the ledger's transaction: releases the reservations still
    /// held (one the sweeper released is not released twice), locks the counters they touch, runs the
    /// engine's settlement in order and writes the counters back. Returns each record with its split
    /// filled in. Items in `skip` (stored by an earlier attempt of this batch) are returned unsettled.
    static func settle(_ items: [Settling], skip: Set<String>, on connection: PostgresConnection) async throws
        -> [(BillingRecord, ChargeSplit?)]
    {
        let work = items.filter { !skip.contains($0.record.id) }
        let shared = work.compactMap(\.reservation).filter { $0.id != 0 }
        var held = Set<UInt64>()
        if !shared.isEmpty {
            let ids = shared.map { Int64(bitPattern: $0.id) }
            let rows = try await connection.query(
                "DELETE FROM policy_reservations WHERE id = ANY(\(ids)::int8[]) RETURNING id",
                logger: Logger(label: "gateway.policy"))
            for try await id in rows.decode(Int64.self) { held.insert(UInt64(bitPattern: id)) }
        }
        let keys = shared.flatMap { r in [r.free, r.grant, r.budget].compactMap { $0?.key } }
        let locked = try await lock(Set(keys.map(Identity.init)), on: connection)
        var engine = PolicyEngine()
        for key in keys {
            guard let row = locked[Identity(key)] else { throw StoreError.invalid("a policy counter is missing") }
            engine.load(key, used: row.used, reserved: row.reserved)
        }
        for r in shared where held.contains(r.id) { engine.hold(r) }

        var out: [(BillingRecord, ChargeSplit?)] = []
        for item in items {
            var record = item.record
            guard let reservation = item.reservation, !skip.contains(record.id) else {
                out.append((record, nil))
                continue
            }
            let split = engine.settle(reservation, actual: record.usage, cost: record.cost, convert: item.convert)
            record.freeUnits = split.freeUnits
            record.grantUnits = split.grantUnits
            record.freeCost = split.freeCost
            record.charged = split.charged
            record.budgetCharge = split.budgetCharge
            out.append((record, split))
        }
        var values: [Identity: (Int64, Int64)] = [:]
        for key in keys { if let c = engine.counter(key) { values[Identity(key)] = c } }
        try await update(values, on: connection)
        return try await announceOnce(out, on: connection)
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

    // MARK: Expiry and standing

    /// Releases reservations whose expiry has passed (a replica that died, or a request that outlived
    /// it), at most `limit` at a time; rows another transaction holds are left for the next sweep.
    func sweep(now: Date, limit: Int = 1_000) async throws -> [ExpiredReservation] {
        try await store.inTransaction { connection in
            let rows = try await connection.query(
                """
                DELETE FROM policy_reservations WHERE id IN (
                    SELECT id FROM policy_reservations WHERE expires_at <= \(SQLiteLedger.microseconds(now))
                    ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                RETURNING tenant_id, key_id, model, free_period, free_units, grant_units, budget_period,
                          budget_currency, budget_units
                """, logger: Logger(label: "gateway.policy"))
            var expired: [ExpiredReservation] = []
            var release: [Identity: Int64] = [:]
            for try await (tenant, key, model, freePeriod, free, grant, budgetPeriod, currency, budget) in rows.decode(
                (String, String, String, Int64?, Int64, Int64, Int64?, String?, Int64).self)
            {
                expired.append(ExpiredReservation(tenantID: tenant, keyID: key, model: model))
                if let freePeriod {
                    release[Identity(tenant: tenant, pool: "free", periodStart: freePeriod, currency: ""), default: 0]
                        .saturatingAdd(free)
                }
                if grant > 0 {
                    release[
                        Identity(tenant: tenant, pool: "grant", periodStart: Self.noPeriod, currency: ""), default: 0
                    ]
                    .saturatingAdd(grant)
                }
                if let budgetPeriod, let currency {
                    release[
                        Identity(tenant: tenant, pool: "budget", periodStart: budgetPeriod, currency: currency),
                        default: 0
                    ].saturatingAdd(budget)
                }
            }
            let locked = try await Self.lock(Set(release.keys), on: connection)
            var values: [Identity: (Int64, Int64)] = [:]
            for (id, row) in locked {
                values[id] = (row.used, max(0, row.reserved.saturatingSubtracting(release[id] ?? 0)))
            }
            try await Self.update(values, on: connection)
            return expired
        }
    }

    /// Reservations held now by every replica (expired ones included until swept).
    func heldReservations() async throws -> Int {
        for try await n in try await store.client.query(
            "SELECT count(*) FROM policy_reservations", logger: logger
        ).decode(Int64.self) {
            return Int(n)
        }
        return 0
    }

    /// Used and reserved amounts of each pool the tenant draws on now, as every replica sees them.
    func standing(_ context: TenantContext, now: Date) async throws -> [PolicyEngine.CounterKey: (
        used: Int64, reserved: Int64
    )] {
        let keys = PolicyEngine.keys(context, model: "", now: now)
        try await ensure(counters: keys, scopes: [])
        let ids = keys.map(Identity.init)
        let rows = try await store.client.query(
            """
            SELECT tenant_id, pool, period_start, currency, used, reserved FROM policy_counters
            WHERE (tenant_id, pool, period_start, currency) IN (
                SELECT * FROM unnest(\(ids.map(\.tenant))::text[], \(ids.map(\.pool))::text[],
                                     \(ids.map(\.periodStart))::int8[], \(ids.map(\.currency))::text[]))
            """, logger: logger)
        var found: [Identity: (Int64, Int64)] = [:]
        for try await (t, p, s, c, used, reserved) in rows.decode((String, String, Int64, String, Int64, Int64).self) {
            found[Identity(tenant: t, pool: p, periodStart: s, currency: c)] = (used, reserved)
        }
        var out: [PolicyEngine.CounterKey: (Int64, Int64)] = [:]
        for key in keys { out[key] = found[Identity(key)] ?? (0, 0) }
        return out
    }
}
