import Foundation
import Logging
import Metering
import NIOPosix
import Testing

@testable import Gateway

/// Policy state shared on PostgreSQL: three "replicas" (each its own connection pool, ledger and policy
/// service, as three gateway processes have) admit and settle against one database at once.
@Suite("Shared policy state on PostgreSQL")
struct SharedPolicyTests {
    /// $1 per million tokens in and out: a request of 1,000 + 1,000 tokens costs 2,000,000 nano-USD.
    static let price = PriceEntry(
        id: "m@0", effectiveFrom: .distantPast, currency: "USD", input: 1_000_000_000, output: 1_000_000_000)
    static let plans = PlanBook(plans: ["default": Plan(name: "default")], defaultPlan: "default")
    static let prices = PriceBook(entries: [:])

    struct Replica {
        var store: PostgresStore
        var ledger: PostgresLedger
        var policy: PolicyService
    }

    struct Cluster {
        var replicas: [Replica]
        var close: @Sendable () -> Void
        var admin: PostgresStore { replicas[0].store }
    }

    static func cluster(replicas: Int = 3, ttl: TimeInterval = 3600, url given: String? = nil) async throws
        -> Cluster
    {
        let (url, drop) = try given.map { ($0, {}) } ?? PostgresTestCluster.freshDatabase()
        var list: [Replica] = []
        for _ in 0..<replicas {
            let store = try await PostgresStore.open(url: url)
            let ledger = PostgresLedger(store: store, reservationTTL: ttl)
            let policy = PolicyService(
                plans: plans, prices: prices, store: store,
                notifier: AlertNotifier(
                    webhook: nil, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "t")),
                metrics: GatewayMetrics(), reservationTTL: ttl, shared: ledger)
            list.append(Replica(store: store, ledger: ledger, policy: policy))
        }
        let stores = list.map(\.store)
        return Cluster(
            replicas: list,
            close: {
                for s in stores { s.close() }
                drop()
            })
    }

    static func request(_ now: Date, prompt: Int = 1_000, completion: Int = 1_000) -> AdmissionRequest {
        AdmissionRequest(
            model: "m", estimate: Usage(prompt: prompt, completion: completion), requestedMaxOutput: completion,
            price: price, now: now)
    }

    static func record(_ key: AuthenticatedKey, at start: Date, usage: Usage) throws -> BillingRecord {
        BillingRecord(
            id: BillingRecord.newID(), requestID: "req_\(UUID().uuidString)", tenantID: key.tenant.id,
            keyID: key.key.id, startedAt: start, endedAt: start.addingTimeInterval(0.1), timeToFirstTokenMs: 10,
            endpoint: "/v1/chat/completions", model: "m", upstreamModel: "m", provider: "p", stream: false,
            status: .completed, httpStatus: 200, error: nil, usage: usage, usageSource: .upstream,
            localPromptTokens: usage.prompt, localCompletionTokens: usage.completion, localIsEstimate: false,
            priceEntry: price.id, cost: try price.cost(of: usage))
    }

    static func key(_ store: PostgresStore, budget: String? = nil, limits: RateLimits? = nil) async throws
        -> AuthenticatedKey
    {
        var tenant = try await store.createTenant(name: "t-\(UUID().uuidString.prefix(8))", timezone: "UTC")
        if let budget {
            tenant = try await store.setBudget(tenant.id, limit: budget, currency: "USD", period: .month, soft: false)
        }
        var (key, _) = try await store.createKey(tenant: tenant.id, name: nil)
        if let limits { key = try await store.setKeyLimits(key.id, limits: limits) }
        return AuthenticatedKey(key: key, tenant: tenant)
    }

    /// A fixed instant in the middle of a minute, so rate windows do not roll over during a test.
    static let now = Date(timeIntervalSince1970: 1_796_000_030)

    @Test(
        "a hard budget holds across three replicas: exactly as many admitted as it pays for, counters equal the ledger")
    func hardBudgetAcrossReplicas() async throws {
        let cluster = try await Self.cluster()
        defer { cluster.close() }
        // 0.05 USD pays for exactly 25 requests of 2,000,000 nano-USD.
        let key = try await Self.key(cluster.admin, budget: "0.05")
        let outcomes = try await withThrowingTaskGroup(of: [Int]?.self) { group in
            for i in 0..<90 {
                let replica = cluster.replicas[i % 3]
                group.addTask {
                    let admission = try await replica.policy.admit(key, Self.request(Self.now))
                    guard case .admitted(let reservation, _) = admission else { return nil }
                    let record = try Self.record(key, at: Self.now, usage: reservation.estimate)
                    let (_, split) = try await replica.policy.settleAndStore(
                        record, reservation: reservation, in: replica.ledger)
                    return split?.alerts.map(\.percent) ?? []
                }
            }
            return try await group.reduce(into: [[Int]?]()) { $0.append($1) }
        }
        #expect(outcomes.compactMap { $0 }.count == 25)
        // Each threshold is announced once, by whichever replica's settlement crossed it.
        #expect(outcomes.compactMap { $0 }.flatMap { $0 }.sorted() == Budget.defaultAlertPercents.sorted())
        let standing = try await cluster.replicas[2].policy.standing(tenant: key.tenant, now: Self.now)
        let budget = try #require(standing.first { $0.0.pool == .budget })
        #expect(budget.1 == 50_000_000 && budget.2 == 0 && budget.3 == 50_000_000)
        let ledger = try await cluster.admin.counterTotal(budget.0)
        #expect(ledger == budget.1)
        #expect(try await cluster.replicas[0].ledger.policy.heldReservations() == 0)
    }

    @Test("free quota then budget across replicas: every record's split sums to the counters")
    func freeThenBudget() async throws {
        let cluster = try await Self.cluster()
        defer { cluster.close() }
        var owner = try await Self.key(cluster.admin, budget: "0.02")
        owner.tenant = try await cluster.admin.setQuota(owner.tenant.id, amount: "5000", credit: nil, period: .month)
        let key = owner
        let settled = try await withThrowingTaskGroup(of: BillingRecord?.self) { group in
            for i in 0..<30 {
                let replica = cluster.replicas[i % 3]
                group.addTask {
                    let admission = try await replica.policy.admit(key, Self.request(Self.now, completion: 500))
                    guard case .admitted(let reservation, _) = admission else { return nil }
                    // Actual output below the estimate: settlement draws the real usage, not the estimate.
                    let record = try Self.record(key, at: Self.now, usage: Usage(prompt: 1_000, completion: 250))
                    return try await replica.policy.settleAndStore(record, reservation: reservation, in: replica.ledger)
                        .0
                }
            }
            return try await group.reduce(into: [BillingRecord]()) { if let r = $1 { $0.append(r) } }
        }
        let standing = try await cluster.replicas[1].policy.standing(tenant: key.tenant, now: Self.now)
        let free = try #require(standing.first { $0.0.pool == .free })
        let budget = try #require(standing.first { $0.0.pool == .budget })
        #expect(free.1 == settled.map(\.freeUnits).reduce(0, +) && free.1 == 5_000)
        #expect(budget.1 == settled.compactMap(\.budgetCharge?.nanos).reduce(0, +))
        #expect(budget.1 <= 20_000_000 && free.2 == 0 && budget.2 == 0)
        #expect(try await cluster.admin.counterTotal(budget.0) == budget.1)
        #expect(try await cluster.admin.counterTotal(free.0) == free.1)
    }

    @Test("rate limits hold for the key as a whole: RPM and concurrency across replicas")
    func rateLimitsAcrossReplicas() async throws {
        let cluster = try await Self.cluster()
        defer { cluster.close() }
        let rpm = try await Self.key(cluster.admin, limits: RateLimits(requestsPerMinute: 7))
        let admitted = try await withThrowingTaskGroup(of: Reservation?.self) { group in
            for i in 0..<30 {
                let replica = cluster.replicas[i % 3]
                group.addTask {
                    guard case .admitted(let r, _) = try await replica.policy.admit(rpm, Self.request(Self.now))
                    else { return nil }
                    return r
                }
            }
            return try await group.reduce(into: [Reservation]()) { if let r = $1 { $0.append(r) } }
        }
        #expect(admitted.count == 7)
        // The next minute opens a new window.
        let later = Self.now.addingTimeInterval(60)
        guard case .admitted = try await cluster.replicas[0].policy.admit(rpm, Self.request(later)) else {
            Issue.record("a new minute admits again")
            return
        }

        // A request that started in an earlier minute (a slow body, a replica's clock behind) does not take
        // the window back to that minute and start it afresh.
        for _ in 0..<6 { _ = try await cluster.replicas[1].policy.admit(rpm, Self.request(later)) }
        guard case .rejected = try await cluster.replicas[2].policy.admit(rpm, Self.request(Self.now)) else {
            Issue.record("an earlier minute reopened the window")
            return
        }
        guard case .rejected = try await cluster.replicas[0].policy.admit(rpm, Self.request(later)) else {
            Issue.record("the current minute's window was reset")
            return
        }

        let concurrent = try await Self.key(cluster.admin, limits: RateLimits(concurrent: 2))
        let held = try await withThrowingTaskGroup(of: (Reservation, Int)?.self) { group in
            for i in 0..<12 {
                group.addTask {
                    let replica = cluster.replicas[i % 3]
                    guard case .admitted(let r, _) = try await replica.policy.admit(concurrent, Self.request(Self.now))
                    else { return nil }
                    return (r, i % 3)
                }
            }
            return try await group.reduce(into: [(Reservation, Replica)]()) {
                if let (r, i) = $1 { $0.append((r, cluster.replicas[i])) }
            }
        }
        #expect(held.count == 2)
        // Settling one (on its own replica) frees a slot on every replica.
        let (first, owner) = held[0]
        _ = try await owner.policy.settleAndStore(
            try Self.record(concurrent, at: Self.now, usage: Usage(prompt: 10)), reservation: first, in: owner.ledger)
        guard case .admitted = try await cluster.replicas[2].policy.admit(concurrent, Self.request(Self.now)) else {
            Issue.record("a settled request frees its concurrency slot for every replica")
            return
        }
    }

    @Test("a dead replica's reservations are released by another after their expiry, once")
    func expiredReservations() async throws {
        let cluster = try await Self.cluster(replicas: 2, ttl: 1)
        defer { cluster.close() }
        let key = try await Self.key(cluster.admin, budget: "0.01", limits: RateLimits(concurrent: 3))
        let now = Date()
        // Replica 0 admits three requests and "dies": nothing settles them.
        var orphans: [Reservation] = []
        for _ in 0..<3 {
            guard case .admitted(let r, _) = try await cluster.replicas[0].policy.admit(key, Self.request(now)) else {
                Issue.record("admit")
                return
            }
            orphans.append(r)
        }
        guard case .rejected(let full) = try await cluster.replicas[1].policy.admit(key, Self.request(now)) else {
            Issue.record("the held budget and concurrency refuse a fourth request")
            return
        }
        #expect(full.kind == .insufficientQuota || full.kind == .rateLimited)
        #expect(try await cluster.replicas[1].policy.sweepExpired(now: now).isEmpty)
        // Expiry runs from each admission, which may come well after `now` on a loaded machine.
        let admitted = Date()
        let swept = try await cluster.replicas[1].policy.sweepExpired(now: admitted.addingTimeInterval(2))
        #expect(swept.count == 3 && swept.allSatisfy { $0.tenantID == key.tenant.id })
        let standing = try await cluster.replicas[1].policy.standing(tenant: key.tenant, now: now)
        #expect(standing.map(\.2) == [0])
        guard case .admitted = try await cluster.replicas[1].policy.admit(key, Self.request(now)) else {
            Issue.record("released reservations make room again")
            return
        }
        // A late settlement of a swept reservation counts its usage and releases nothing twice.
        let late = try Self.record(key, at: now, usage: Usage(prompt: 500, completion: 500))
        let (stored, _) = try await cluster.replicas[0].policy.settleAndStore(
            late, reservation: orphans[0], in: cluster.replicas[0].ledger)
        let after = try await cluster.replicas[1].policy.standing(tenant: key.tenant, now: now)
        #expect(after.map(\.1) == [stored.budgetCharge?.nanos ?? -1])
        #expect(after.map(\.2) == [2_000_000])
    }
}

extension SharedPolicyTests {
    @Test("upgrading from schema 1: the counters start from the records already in the ledger")
    func upgradeFromPreviousSchema() async throws {
        let (url, drop) = try PostgresTestCluster.freshDatabase()
        defer { drop() }
        let old = try await PostgresStore.open(url: url, migrateThrough: 1)
        #expect(try await old.appliedMigrations() == [1])
        old.close()
        // Written as the previous version wrote them (its columns only): a tenant with a 0.05 USD budget
        // that has spent 0.01 USD, while its counters lived in memory.
        let start = SQLiteLedger.microseconds(Self.now)
        let (status, output) = PostgresTestCluster.run(
            "/usr/bin/env",
            [
                "psql", url, "-v", "ON_ERROR_STOP=1", "-qc",
                """
                INSERT INTO tenants (id, name, status, timezone, created_at, budget_limit, budget_currency,
                    budget_period, budget_soft)
                VALUES ('ten_old', 'old', 'active', 'UTC', now(), '0.050000000', 'USD', 'month', false);
                INSERT INTO billing_records (id, request_id, tenant_id, key_id, started_at, ended_at, endpoint, model,
                    upstream_model, provider, stream, status, http_status, prompt_tokens, cached_tokens,
                    cache_write_tokens, completion_tokens, reasoning_tokens, usage_source, local_prompt_tokens,
                    local_completion_tokens, local_estimate, currency, cost_nanos, charged_nanos, budget_currency,
                    budget_charge_nanos)
                VALUES ('rec_old', 'req_old', 'ten_old', 'key', \(start), \(start), '/v1/chat/completions', 'm', 'm',
                    'p', false, 'completed', 200, 5000, 0, 0, 5000, 0, 'upstream', 5000, 5000, false, 'USD',
                    10000000, 10000000, 'USD', 10000000);
                """,
            ])
        #expect(status == 0, "\(output)")

        let cluster = try await Self.cluster(url: url)
        defer { cluster.close() }
        #expect(try await cluster.admin.appliedMigrations() == Array(1...4))
        let tenant = try await cluster.admin.tenant("ten_old")
        let (created, _) = try await cluster.admin.createKey(tenant: tenant.id, name: nil)
        let key = AuthenticatedKey(key: created, tenant: tenant)
        var admitted = 0
        for i in 0..<40 {
            let replica = cluster.replicas[i % 3]
            if case .admitted = try await replica.policy.admit(key, Self.request(Self.now)) { admitted += 1 }
        }
        // 0.04 USD left: 20 requests of 0.002.
        #expect(admitted == 20)
        let standing = try await cluster.replicas[0].policy.standing(tenant: key.tenant, now: Self.now)
        #expect(standing.map(\.1) == [10_000_000] && standing.map(\.2) == [40_000_000])
    }
}

extension SharedPolicyTests {
    @Test("a retried settlement batch (its COMMIT answer lost) settles and stores nothing twice")
    func retriedSettlement() async throws {
        let cluster = try await Self.cluster(replicas: 1)
        defer { cluster.close() }
        let key = try await Self.key(cluster.admin, budget: "1.00")
        let replica = cluster.replicas[0]
        guard case .admitted(let r, _) = try await replica.policy.admit(key, Self.request(Self.now)) else {
            Issue.record("admit")
            return
        }
        let record = try Self.record(key, at: Self.now, usage: Usage(prompt: 1_000, completion: 500))
        let item = PostgresPolicyStore.Settling(record: record, reservation: r, convert: { m, _ in m })
        let first = try await PostgresLedger.commit([item], retried: false, into: replica.store)
        let standing = try await replica.policy.standing(tenant: key.tenant, now: Self.now)
        // The same batch again, as GroupCommit retries it when the first answer never came.
        _ = try await PostgresLedger.commit([item], retried: true, into: replica.store)
        let after = try await replica.policy.standing(tenant: key.tenant, now: Self.now)
        #expect(first[0].record.budgetCharge?.nanos == 1_500_000)
        #expect(after.map(\.1) == standing.map(\.1) && after.map(\.1) == [1_500_000])
        #expect(try await cluster.admin.counterTotal(after[0].0) == 1_500_000)
    }

    @Test("a reservation's expiry runs from its admission, not from the request's start")
    func expiryFromAdmission() async throws {
        let cluster = try await Self.cluster(replicas: 1, ttl: 60)
        defer { cluster.close() }
        let key = try await Self.key(cluster.admin, budget: "1.00")
        // A request that started two hours ago (a body sent a byte at a time) is admitted now.
        let started = Date().addingTimeInterval(-7_200)
        guard case .admitted(let r, _) = try await cluster.replicas[0].policy.admit(key, Self.request(started)) else {
            Issue.record("admit")
            return
        }
        #expect(r.expiresAt > Date().addingTimeInterval(50))
        #expect(try await cluster.replicas[0].policy.sweepExpired(now: Date()).isEmpty)
    }
}
