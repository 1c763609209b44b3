import Crypto
import Foundation
import Gateway
import Metering
import Testing

/// The behaviour every store backend must show, run against each one. A second backend joins by adding
/// a case to `backends`.
@Suite("Store conformance")
struct StoreConformanceTests {
    /// A fresh, empty store and its ledger; `close` removes what the backend made.
    struct Backend: Sendable, CustomTestStringConvertible {
        var name: String
        var open: @Sendable () async throws -> (store: any Store, ledger: any Ledger, close: @Sendable () -> Void)
        var testDescription: String { name }
    }

    static let backends: [Backend] = [
        Backend(name: "sqlite") {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-conf-\(UUID().uuidString)").path
            let store = try GatewayStore(dataDirectory: dir)
            return (store, SQLiteLedger(store: store), { try? FileManager.default.removeItem(atPath: dir) })
        },
        Backend(name: "postgres") {
            let (url, drop) = try PostgresTestCluster.freshDatabase()
            let store = try await PostgresStore.open(url: url)
            return (
                store, PostgresLedger(store: store),
                {
                    store.close()
                    drop()
                }
            )
        },
    ]

    static func expectStoreError(_ kind: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected a \(kind) error")
        } catch let error as StoreError {
            switch (kind, error) {
            case ("notFound", .notFound), ("conflict", .conflict), ("invalid", .invalid): break
            default: Issue.record("expected \(kind), got \(error)")
            }
        } catch {
            Issue.record("expected a StoreError, got \(error)")
        }
    }

    /// Equal but for the creation time, which a store keeps to the millisecond.
    static func same(_ a: Tenant, _ b: Tenant) -> Bool {
        var a = a
        guard abs(a.createdAt.timeIntervalSince(b.createdAt)) < 0.001 else { return false }
        a.createdAt = b.createdAt
        return a == b
    }

    @Test("tenants: unique names, found by id or name, settings validated", arguments: backends)
    func tenants(_ backend: Backend) async throws {
        let (store, _, close) = try await backend.open()
        defer { close() }
        let acme = try await store.createTenant(name: "acme", timezone: "Asia/Shanghai")
        #expect(acme.isActive && acme.timezone == "Asia/Shanghai" && acme.budget == nil && acme.quota == nil)
        #expect(Self.same(try await store.tenant(acme.id), acme))
        #expect(Self.same(try await store.tenant("acme"), acme))
        await Self.expectStoreError("conflict") { _ = try await store.createTenant(name: "acme", timezone: "UTC") }
        await Self.expectStoreError("notFound") { _ = try await store.tenant("nobody") }
        await Self.expectStoreError("invalid") { _ = try await store.createTenant(name: "x", timezone: "Mars/Olympus") }
        _ = try await store.createTenant(name: "globex", timezone: "UTC")
        #expect(Set(try await store.tenants().map(\.name)) == ["acme", "globex"])

        let suspended = try await store.updateTenant("acme", .init(plan: "team", currency: "CNY", status: "suspended"))
        #expect(suspended.status == .suspended && suspended.plan == "team" && suspended.currency == "CNY")
        #expect(Self.same(try await store.tenant("acme"), suspended))
        await Self.expectStoreError("invalid") { _ = try await store.updateTenant("acme", .init(status: "gone")) }
        await Self.expectStoreError("invalid") { _ = try await store.updateTenant("acme", .init(currency: "usd")) }
    }

    @Test("budget and quota overrides round-trip as domain values and clear", arguments: backends)
    func overrides(_ backend: Backend) async throws {
        let (store, _, close) = try await backend.open()
        defer { close() }
        _ = try await store.createTenant(name: "acme", timezone: "UTC")
        let budgeted = try await store.setBudget("acme", limit: "3.50", currency: "USD", period: .week, soft: true)
        #expect(
            budgeted.budget
                == Tenant.BudgetOverride(limit: Money(nanos: 3_500_000_000, currency: "USD"), period: .week, soft: true)
        )
        #expect(try await store.tenant("acme").budget == budgeted.budget)
        await Self.expectStoreError("invalid") {
            _ = try await store.setBudget("acme", limit: "lots", currency: nil, period: .month, soft: false)
        }
        #expect(try await store.clearBudget("acme").budget == nil)

        let tokens = try await store.setQuota("acme", amount: "1234", credit: nil, period: .day)
        #expect(tokens.quota == Tenant.QuotaOverride(amount: 1234, unit: .tokens, period: .day))
        let credit = try await store.setQuota("acme", amount: "2.5", credit: "CNY", period: .month)
        #expect(
            credit.quota == Tenant.QuotaOverride(amount: 2_500_000_000, unit: .credit(currency: "CNY"), period: .month))
        #expect(try await store.tenant("acme").quota == credit.quota)
        await Self.expectStoreError("invalid") {
            _ = try await store.setQuota("acme", amount: "1", credit: nil, period: .week)
        }
        #expect(try await store.clearQuota("acme").quota == nil)
    }

    @Test(
        "keys: the secret once, only its hash kept, revocation and limits, the auth version moves", arguments: backends)
    func keys(_ backend: Backend) async throws {
        let (store, _, close) = try await backend.open()
        defer { close() }
        let tenant = try await store.createTenant(name: "acme", timezone: "UTC")
        var version = try await store.authVersion()
        let (key, secret) = try await store.createKey(tenant: "acme", name: "laptop")
        #expect(try await store.authVersion() > version)
        version = try await store.authVersion()
        #expect(key.hash == Data(SHA256.hash(data: Data(secret.utf8))))
        #expect(secret.hasPrefix(key.prefix) && !secret.isEmpty && key.prefix.count < secret.count)
        #expect(key.tenantID == tenant.id && key.name == "laptop" && !key.isRevoked)
        let found = try #require(try await store.activeCredential(hash: key.hash))
        #expect(found.key.id == key.id && found.tenant.id == tenant.id)
        #expect(try await store.activeCredentials().map(\.key.id) == [key.id])
        #expect(try await store.keys(tenant: "acme").map(\.id) == [key.id])

        let limited = try await store.setKeyLimits(key.id, limits: RateLimits(requestsPerMinute: 5, concurrent: 2))
        #expect(limited.requestsPerMinute == 5 && limited.concurrent == 2 && limited.tokensPerMinute == nil)
        await Self.expectStoreError("invalid") {
            _ = try await store.setKeyLimits(key.id, limits: RateLimits(concurrent: 0))
        }
        await Self.expectStoreError("invalid") {
            _ = try await store.setKeyLimits(key.id, limits: RateLimits(concurrent: -3))
        }

        let revoked = try await store.revokeKey(String(secret.prefix(12)))
        #expect(revoked.isRevoked)
        #expect(try await store.authVersion() > version)
        #expect(try await store.activeCredential(hash: key.hash) == nil)
        #expect(try await store.activeCredentials().isEmpty)
        await Self.expectStoreError("notFound") { _ = try await store.revokeKey("nokey") }
        await Self.expectStoreError("notFound") { _ = try await store.createKey(tenant: "nobody", name: nil) }
    }

    static func record(
        tenant: String, model: String, at start: Date, cost: Int64, currency: String, budget: Int64, free: Int64
    ) -> BillingRecord {
        var r = BillingRecord(
            id: BillingRecord.newID(), requestID: "req_\(UUID().uuidString)", tenantID: tenant, keyID: "key",
            startedAt: start, endedAt: start.addingTimeInterval(0.5), timeToFirstTokenMs: 100,
            endpoint: "/v1/chat/completions", model: model, upstreamModel: model, provider: "p", stream: false,
            status: .completed, httpStatus: 200, error: nil,
            usage: Usage(prompt: 100, completion: 20, cachedPrompt: 10, reasoning: 5), usageSource: .upstream,
            localPromptTokens: 100, localCompletionTokens: 20, localIsEstimate: false, priceEntry: "\(model)@0",
            cost: Money(nanos: cost, currency: currency))
        r.freeUnits = free
        r.charged = Money(nanos: cost, currency: currency)
        r.freeCost = .zero(currency)
        r.budgetCharge = Money(nanos: budget, currency: "USD")
        return r
    }

    @Test(
        "every column of a record reads back as written: nils, empty and non-ASCII text, extremes", arguments: backends)
    func recordRoundTrip(_ backend: Backend) async throws {
        let (store, ledger, close) = try await backend.open()
        defer { close() }
        let start = Date(timeIntervalSince1970: 1_796_000_000.123456)
        var full = Self.record(
            tenant: "tenant-é中", model: "模型-1", at: start, cost: Int64.max, currency: "CNY", budget: -5, free: 0)
        full.error = "upstream_cut"
        full.status = .upstreamCut
        full.stream = true
        full.localIsEstimate = true
        full.timeToFirstTokenMs = 0
        full.estimatedTokens = Int(Int32.max) + 7
        full.estimatedCost = Money(nanos: 123_456_789, currency: "CNY")
        full.grantUnits = Int64.min + 1
        full.usage = Usage(prompt: 1 << 40, completion: 3, cachedPrompt: 2, cacheWrite: 1, reasoning: 1)
        var bare = Self.record(tenant: "", model: "", at: start, cost: 0, currency: "USD", budget: 0, free: 0)
        bare.timeToFirstTokenMs = nil
        bare.priceEntry = nil
        bare.cost = nil
        bare.charged = nil
        bare.freeCost = nil
        bare.budgetCharge = nil
        bare.usageSource = .none
        bare.endpoint = ""
        for record in [full, bare] { try await ledger.append(record) }
        let back = try await store.billingPage(
            .init(from: .distantPast, to: .distantFuture), afterSeq: 0, limit: 10
        ).map(\.record)
        #expect(back == [full, bare])
    }

    @Test("the ledger: every record paged back in order, and sums equal the records", arguments: backends)
    func ledger(_ backend: Backend) async throws {
        let (store, ledger, close) = try await backend.open()
        defer { close() }
        let a = try await store.createTenant(name: "acme", timezone: "UTC")
        let b = try await store.createTenant(name: "globex", timezone: "UTC")
        let day = CalendarPeriod.instant("2026-11-15T00:00:00Z")!
        var written: [BillingRecord] = []
        for i in 0..<250 {
            let r = Self.record(
                tenant: i % 3 == 0 ? b.id : a.id, model: i % 2 == 0 ? "m1" : "m2",
                at: day.addingTimeInterval(Double(i) * 600), cost: Int64(1_000 + i),
                currency: i % 5 == 0 ? "CNY" : "USD",
                budget: Int64(i), free: Int64(i % 7))
            try await ledger.append(r)
            written.append(r)
        }
        let all = GatewayStore.BillingQuery(from: .distantPast, to: .distantFuture)
        var paged: [BillingRecord] = []
        var after: Int64 = 0
        while true {
            let page = try await store.billingPage(all, afterSeq: after, limit: 64)
            guard let last = page.last else { break }
            #expect(page.map(\.seq) == page.map(\.seq).sorted())
            paged += page.map(\.record)
            after = last.seq
        }
        #expect(paged.map(\.id) == written.map(\.id))
        #expect(paged.map(\.cost) == written.map(\.cost) && paged.map(\.usage) == written.map(\.usage))

        let ofA = GatewayStore.BillingQuery(from: .distantPast, to: .distantFuture, tenantID: a.id)
        let mine = written.filter { $0.tenantID == a.id }
        let totals = try await store.usageTotals(ofA)
        for currency in ["USD", "CNY"] {
            let rows = mine.filter { $0.cost?.currency == currency }
            let total = try #require(totals.first { $0.currency == currency })
            #expect(total.requests == rows.count)
            #expect(total.costNanos == rows.compactMap(\.cost?.nanos).reduce(0, +))
            #expect(total.promptTokens == rows.map(\.usage.prompt).reduce(0, +))
        }
        let byModel = try await store.usageByModel(ofA)
        #expect(byModel.map(\.total.requests).reduce(0, +) == mine.count)
        #expect(try await store.tenantNames() == [a.id: "acme", b.id: "globex"])

        // Counters rebuilt from the ledger equal the records of their period.
        let period = CalendarPeriod.containing(day, kind: .day, timeZone: .gmt)
        let budgetKey = PolicyEngine.CounterKey(
            pool: .budget, tenantID: a.id, periodStart: period.start, periodEnd: period.end, currency: "USD")
        let inDay = mine.filter { $0.startedAt >= period.start && $0.startedAt < period.end }
        #expect(try await store.counterTotal(budgetKey) == inDay.compactMap(\.budgetCharge?.nanos).reduce(0, +))
        let freeKey = PolicyEngine.CounterKey(
            pool: .free, tenantID: a.id, periodStart: period.start, periodEnd: period.end)
        #expect(try await store.counterTotal(freeKey) == inDay.map(\.freeUnits).reduce(0, +))
        try await store.ping()
    }
}
