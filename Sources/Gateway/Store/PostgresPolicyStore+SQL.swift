import Foundation
import Logging
import Metering
import PostgresNIO

/// The two statements of each shared-policy transaction (lock and read, write back), the sweeper, and
/// the reads for `quota show`.
extension PostgresPolicyStore {
    /// The rows a transaction locked, as read once the locks were held.
    struct Snapshot {
        /// Reservations this statement deleted (still held until now).
        var held = Set<UInt64>()
        /// Records already in the ledger.
        var stored = Set<String>()
        var counters: [Identity: (used: Int64, reserved: Int64)] = [:]
        var rates: [String: (windowStart: Int64, requests: Int64, tokens: Int64)] = [:]

        /// One statement: deletes the reservations being settled, and locks the rate rows and then the
        /// counter rows (each in sorted order, so no two transactions wait on
        /// each other in a cycle). Locked rows are read as the last transaction to hold them left them.
        static func lock(
            release: [Int64] = [], counters: Set<Identity> = [], scopes: [String] = [],
            on connection: PostgresConnection
        ) async throws -> Snapshot {
            let ids = Array(counters)
            let statement = LockStatement(
                release: release, scopes: scopes, tenants: ids.map(\.tenant), pools: ids.map(\.pool),
                periods: ids.map(\.periodStart), currencies: ids.map(\.currency))
            var snapshot = Snapshot()
            for try await (kind, a, b, n, currency, x, y) in try await connection.execute(
                statement, logger: Logger(label: "gateway.policy"))
            {
                switch kind {
                case "d": if let id = Int64(a) { snapshot.held.insert(UInt64(bitPattern: id)) }
                case "r": snapshot.rates[a] = (n, x, y)
                default:
                    snapshot.counters[Identity(tenant: a, pool: b, periodStart: n, currency: currency)] = (x, y)
                }
            }
            return snapshot
        }

        /// Which of these records the ledger already holds.
        static func stored(_ ids: [String], on connection: PostgresConnection) async throws -> Set<String> {
            var out = Set<String>()
            for try await id in try await connection.query(
                "SELECT id FROM billing_records WHERE id = ANY(\(ids)::text[])", logger: Logger(label: "gateway.policy")
            ).decode(String.self) {
                out.insert(id)
            }
            return out
        }

        /// Requests in flight by scope (`t|tenant`, `k|key`): the reservations held. A statement of its
        /// own, run after the rate rows are locked, so that it sees every reservation committed by the
        /// transactions that held those locks before.
        static func inflight(tenants: Set<String>, on connection: PostgresConnection) async throws -> [String: Int] {
            guard !tenants.isEmpty else { return [:] }
            let rows = try await connection.query(
                """
                SELECT tenant_id, key_id, count(*) FROM policy_reservations
                WHERE tenant_id = ANY(\(Array(tenants))::text[]) GROUP BY tenant_id, key_id
                """, logger: Logger(label: "gateway.policy"))
            var out: [String: Int] = [:]
            for try await (tenant, key, n) in rows.decode((String, String, Int64).self) {
                out["t|" + tenant, default: 0] += Int(clamping: n)
                out["k|" + key, default: 0] += Int(clamping: n)
            }
            return out
        }

        func load(_ keys: [PolicyEngine.CounterKey], into engine: inout PolicyEngine) throws {
            for key in keys {
                guard let row = counters[Identity(key)] else { throw StoreError.invalid("a policy counter is missing") }
                engine.load(key, used: row.used, reserved: row.reserved)
            }
        }
    }

    /// What a transaction writes back: counters and rate rows (locked by the snapshot) with their new
    /// amounts and new reservations, in one statement, and records (a statement of their own, before).
    struct Write {
        var counters: [Identity: (used: Int64, reserved: Int64)] = [:]
        var rates: [String: (windowStart: Int64, requests: Int64, tokens: Int64)] = [:]
        var reservations: [Reservation] = []
        var records: [BillingRecord] = []
        /// Billing sinks each record gets a delivery entry for.
        var sinks: [String] = []

        /// Writes the records (if any), then everything else in one statement; returns the new
        /// reservations' ids, in order.
        func run(replica: String, on connection: PostgresConnection) async throws -> [UInt64] {
            let c = Array(counters)
            let r = Array(rates)
            let none = PostgresPolicyStore.noPeriod
            let statement = WriteStatement(
                tenants: c.map(\.key.tenant), pools: c.map(\.key.pool), periods: c.map(\.key.periodStart),
                currencies: c.map(\.key.currency), used: c.map(\.value.used), reserved: c.map(\.value.reserved),
                scopes: r.map(\.key), windows: r.map(\.value.windowStart), requests: r.map(\.value.requests),
                tokens: r.map(\.value.tokens), replica: replica, createdAt: SQLiteLedger.microseconds(Date()),
                none: none, holders: reservations.map(\.tenantID), keys: reservations.map(\.keyID),
                models: reservations.map(\.model),
                expiries: reservations.map { SQLiteLedger.microseconds($0.expiresAt) },
                freePeriods: reservations.map { $0.free.map { Identity($0.key).periodStart } ?? none },
                freeUnits: reservations.map { $0.free?.units ?? 0 },
                grantUnits: reservations.map { $0.grant?.units ?? 0 },
                budgetPeriods: reservations.map { $0.budget.map { Identity($0.key).periodStart } ?? none },
                budgetCurrencies: reservations.map { $0.budget?.key.currency ?? "" },
                budgetUnits: reservations.map { $0.budget?.units ?? 0 })
            if !records.isEmpty {
                _ = try await connection.query(
                    PostgresLedger.insertQuery(records, skippingStored: true, sinks: sinks),
                    logger: Logger(label: "gateway.policy"))
            }
            var ids: [UInt64] = []
            for try await id in try await connection.execute(statement, logger: Logger(label: "gateway.policy")) {
                ids.append(UInt64(bitPattern: id))
            }
            // Ids come from one sequence, drawn in the order the rows were inserted.
            return ids.sorted()
        }
    }

    struct LockStatement: PostgresPreparedStatement {
        static let name = "gateway_policy_lock"
        static let sql = """
            WITH d AS (DELETE FROM policy_reservations WHERE id = ANY($1::int8[]) RETURNING id),
            r AS (SELECT scope, window_start, requests, tokens FROM policy_rates
                  WHERE scope = ANY($2::text[]) ORDER BY scope FOR UPDATE),
            c AS (SELECT tenant_id, pool, period_start, currency, used, reserved FROM policy_counters
                  WHERE (tenant_id, pool, period_start, currency) IN (
                      SELECT * FROM unnest($3::text[], $4::text[], $5::int8[], $6::text[]))
                  ORDER BY tenant_id, pool, period_start, currency FOR UPDATE)
            SELECT 'd'::text, id::text, ''::text, 0::int8, ''::text, 0::int8, 0::int8 FROM d
            UNION ALL SELECT 'r', scope, '', window_start, '', requests, tokens FROM r
            UNION ALL SELECT 'c', tenant_id, pool, period_start, currency, used, reserved FROM c
            """
        typealias Row = (String, String, String, Int64, String, Int64, Int64)

        var release: [Int64]
        var scopes: [String]
        var tenants: [String]
        var pools: [String]
        var periods: [Int64]
        var currencies: [String]

        func makeBindings() -> PostgresBindings {
            var b = PostgresBindings(capacity: 6)
            b.append(release)
            b.append(scopes)
            b.append(tenants)
            b.append(pools)
            b.append(periods)
            b.append(currencies)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    struct WriteStatement: PostgresPreparedStatement {
        static let name = "gateway_policy_write"
        static let sql = """
            WITH u AS (UPDATE policy_counters c SET used = v.used, reserved = v.reserved
                FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[], $6::int8[])
                     AS v(tenant_id, pool, period_start, currency, used, reserved)
                WHERE c.tenant_id = v.tenant_id AND c.pool = v.pool AND c.period_start = v.period_start
                  AND c.currency = v.currency),
            w AS (UPDATE policy_rates p SET window_start = v.window_start, requests = v.requests, tokens = v.tokens
                FROM unnest($7::text[], $8::int8[], $9::int8[], $10::int8[]) AS v(scope, window_start, requests, tokens)
                WHERE p.scope = v.scope)
            INSERT INTO policy_reservations (tenant_id, key_id, model, replica, created_at, expires_at,
                free_period, free_units, grant_units, budget_period, budget_currency, budget_units)
            SELECT v.t, v.k, v.m, $11::text, $12::int8, v.e, NULLIF(v.fp, $13::int8), v.fu, v.gu,
                NULLIF(v.bp, $13::int8), NULLIF(v.bc, ''), v.bu
            FROM unnest($14::text[], $15::text[], $16::text[], $17::int8[], $18::int8[], $19::int8[], $20::int8[],
                        $21::int8[], $22::text[], $23::int8[])
                 WITH ORDINALITY AS v(t, k, m, e, fp, fu, gu, bp, bc, bu, ord)
            ORDER BY v.ord
            RETURNING id
            """
        typealias Row = Int64

        var tenants: [String]
        var pools: [String]
        var periods: [Int64]
        var currencies: [String]
        var used: [Int64]
        var reserved: [Int64]
        var scopes: [String]
        var windows: [Int64]
        var requests: [Int64]
        var tokens: [Int64]
        var replica: String
        var createdAt: Int64
        var none: Int64
        var holders: [String]
        var keys: [String]
        var models: [String]
        var expiries: [Int64]
        var freePeriods: [Int64]
        var freeUnits: [Int64]
        var grantUnits: [Int64]
        var budgetPeriods: [Int64]
        var budgetCurrencies: [String]
        var budgetUnits: [Int64]

        func makeBindings() -> PostgresBindings {
            var b = PostgresBindings(capacity: 23)
            b.append(tenants)
            b.append(pools)
            b.append(periods)
            b.append(currencies)
            b.append(used)
            b.append(reserved)
            b.append(scopes)
            b.append(windows)
            b.append(requests)
            b.append(tokens)
            b.append(replica)
            b.append(createdAt)
            b.append(none)
            b.append(holders)
            b.append(keys)
            b.append(models)
            b.append(expiries)
            b.append(freePeriods)
            b.append(freeUnits)
            b.append(grantUnits)
            b.append(budgetPeriods)
            b.append(budgetCurrencies)
            b.append(budgetUnits)
            return b
        }

        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Int64.self) }
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
                    let id = Identity(tenant: tenant, pool: "grant", periodStart: Self.noPeriod, currency: "")
                    release[id, default: 0].saturatingAdd(grant)
                }
                if let budgetPeriod, let currency {
                    let id = Identity(tenant: tenant, pool: "budget", periodStart: budgetPeriod, currency: currency)
                    release[id, default: 0].saturatingAdd(budget)
                }
            }
            guard !expired.isEmpty else { return [] }
            let snapshot = try await Snapshot.lock(counters: Set(release.keys), on: connection)
            var write = Write()
            for (id, row) in snapshot.counters {
                write.counters[id] = (row.used, max(0, row.reserved.saturatingSubtracting(release[id] ?? 0)))
            }
            _ = try await write.run(replica: "", on: connection)
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
