import Foundation
import Metering
import Testing

@Suite("Policies: quotas, budgets and rate limits as a state machine")
struct PolicyEngineTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let price = PriceEntry(
        id: "m@0", effectiveFrom: .distantPast, currency: "USD", input: 1_000_000_000, output: 2_000_000_000)
    static func at(_ s: String) -> Date { CalendarPeriod.instant(s)! }
    static func same(_ m: Money, _ c: String) -> Money? { m.currency == c ? m : nil }

    static func tenant(_ plan: Plan, zone: TimeZone = utc, keyLimits: RateLimits? = nil) -> TenantContext {
        TenantContext(
            tenantID: "ten_a", keyID: "key_a", timeZone: zone, createdAt: at("2026-11-01T00:00:00Z"), plan: plan,
            keyLimits: keyLimits)
    }

    static func request(prompt: Int = 100, maxOutput: Int = 100, at now: Date, model: String = "m") -> AdmissionRequest
    {
        AdmissionRequest(
            model: model, estimate: Usage(prompt: prompt, completion: maxOutput), requestedMaxOutput: maxOutput,
            price: price, now: now)
    }

    @Test("a hard budget admits exactly as many estimates as fit, and settling returns what was not used")
    func hardBudget() throws {
        // Each estimate: 100 × 1 + 100 × 2 per million USD = 0.0003 USD. A budget of 0.00100 fits 3.
        let plan = Plan(name: "p", budget: Budget(limit: Money(nanos: 1_000_000, currency: "USD"), period: .month))
        var engine = PolicyEngine()
        let now = Self.at("2026-11-15T12:00:00Z")
        var admitted: [Reservation] = []
        for _ in 0..<10 {
            if case .admitted(let r, _) = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same) {
                admitted.append(r)
            }
        }
        #expect(admitted.count == 3)
        guard case .rejected(let rejection) = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same)
        else { Issue.record("expected a rejection"); return }
        #expect(rejection.kind == .insufficientQuota && rejection.httpStatus == 429)
        #expect(rejection.retryAfterSeconds == Int(Self.at("2026-12-01T00:00:00Z").timeIntervalSince(now)))
        // Settle one for half its estimate: 0.00015 comes back, so exactly one more estimate fits... not quite:
        // 0.0006 + 0.00015 + 0.0003 = 0.00105 > 0.001, so still rejected; settling a second frees enough.
        let actual = Usage(prompt: 100, completion: 25)
        let split = engine.settle(
            admitted[0], actual: actual, cost: try Self.price.cost(of: actual), convert: Self.same)
        #expect(split.budgetCharge == Money(nanos: 150_000, currency: "USD"))
        if case .admitted = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same) {
            Issue.record("0.00015 + 0.0006 + 0.0003 exceeds the budget")
        }
        _ = engine.settle(admitted[1], actual: actual, cost: try Self.price.cost(of: actual), convert: Self.same)
        if case .rejected = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same) {
            Issue.record("0.0003 + 0.0003 + 0.0003 fits")
        }
    }

    @Test("free tokens first; a request crossing into paid is split pro rata, free share rounded down")
    func freeThenPaid() throws {
        let quota = FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2026, month: 1, day: 1, amount: 250)])
        let plan = Plan(
            name: "p", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 1_000_000_000, currency: "USD"), period: .month))
        var engine = PolicyEngine()
        let now = Self.at("2026-11-15T12:00:00Z")
        guard case .admitted(let first, _) = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same)
        else { Issue.record("admit"); return }
        let usage = Usage(prompt: 100, completion: 100)  // 0.0003 USD, all free
        let s1 = engine.settle(first, actual: usage, cost: try Self.price.cost(of: usage), convert: Self.same)
        #expect(s1.freeUnits == 200 && s1.charged == .zero("USD") && s1.freeCost?.nanos == 300_000)
        guard case .admitted(let second, _) = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same)
        else { Issue.record("admit"); return }
        let usage2 = Usage(prompt: 100, completion: 50)  // 0.0002 USD; 50 of 150 tokens free
        let s2 = engine.settle(second, actual: usage2, cost: try Self.price.cost(of: usage2), convert: Self.same)
        #expect(s2.freeUnits == 50)
        // free share = floor(200000 × 50 / 150) = 66666; charged = 133334
        #expect(s2.freeCost?.nanos == 66_666 && s2.charged?.nanos == 133_334)
        #expect(s2.budgetCharge?.nanos == 133_334)
        #expect(s2.freeCost!.nanos + s2.charged!.nanos == (try Self.price.cost(of: usage2)).nanos)
    }

    @Test("the free tier shrinks at the tenant's midnight in Asia/Shanghai, not at UTC midnight")
    func scheduleShrinks() {
        let quota = FreeQuota(
            unit: .tokens, period: .day,
            schedule: [
                .init(year: 2025, month: 7, day: 1, amount: 1000), .init(year: 2026, month: 12, day: 1, amount: 300),
            ])
        let plan = Plan(
            name: "p", freeQuota: quota, budget: Budget(limit: .zero("USD"), period: .month))
        // 2026-11-30T15:59:59Z is 23:59:59 on Nov 30 in Shanghai: the old allowance (1000) still holds.
        #expect(quota.allowance(at: Self.at("2026-11-30T15:59:59Z"), timeZone: Self.shanghai) == 1000)
        #expect(quota.allowance(at: Self.at("2026-11-30T16:00:00Z"), timeZone: Self.shanghai) == 300)
        #expect(quota.allowance(at: Self.at("2026-11-30T16:00:00Z"), timeZone: Self.utc) == 1000)
        // With a zero hard budget, only what the free tier covers is admitted.
        var engine = PolicyEngine()
        let before = engine.admit(
            Self.tenant(plan, zone: Self.shanghai),
            Self.request(prompt: 400, maxOutput: 400, at: Self.at("2026-11-30T15:00:00Z")),
            convert: Self.same)
        if case .rejected = before { Issue.record("800 of 1000 free tokens fit on Nov 30") }
        let after = engine.admit(
            Self.tenant(plan, zone: Self.shanghai),
            Self.request(prompt: 200, maxOutput: 200, at: Self.at("2026-11-30T16:30:00Z")),
            convert: Self.same)
        guard case .rejected(let r) = after else { Issue.record("400 tokens exceed the new 300 allowance"); return }
        #expect(r.kind == .insufficientQuota)
    }

    @Test("budget alerts fire once per threshold per period; a soft budget admits past its limit")
    func alerts() throws {
        let plan = Plan(
            name: "p",
            budget: Budget(
                limit: Money(nanos: 1_000_000, currency: "USD"), period: .day, hard: false, alertPercents: [50, 100]))
        var engine = PolicyEngine()
        var fired: [Int] = []
        for i in 0..<8 {
            let now = Self.at("2026-11-15T10:00:00Z").addingTimeInterval(Double(i))
            guard case .admitted(let r, _) = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same)
            else { Issue.record("a soft budget admits"); return }
            let usage = Usage(prompt: 100, completion: 100)
            fired += engine.settle(r, actual: usage, cost: try Self.price.cost(of: usage), convert: Self.same).alerts
                .map(
                    \.percent)
        }
        #expect(fired == [50, 100])
        // The next day is a new period: the 50 % alert fires again.
        let next = Self.at("2026-11-16T10:00:00Z")
        var again: [Int] = []
        for i in 0..<2 {
            guard
                case .admitted(let r, _) = engine.admit(
                    Self.tenant(plan), Self.request(at: next.addingTimeInterval(Double(i))), convert: Self.same)
            else { return }
            let usage = Usage(prompt: 100, completion: 100)
            again += engine.settle(r, actual: usage, cost: try Self.price.cost(of: usage), convert: Self.same).alerts
                .map(
                    \.percent)
        }
        #expect(again == [50])
    }

    @Test("rate limits: requests and tokens per minute with Retry-After, and concurrency")
    func rateLimits() {
        let plan = Plan(name: "p", tenantLimits: RateLimits(requestsPerMinute: 3, tokensPerMinute: 10_000))
        var engine = PolicyEngine()
        let t0 = Self.at("2026-11-15T10:00:00Z")
        for i in 0..<3 {
            guard
                case .admitted(_, let status) = engine.admit(
                    Self.tenant(plan), Self.request(at: t0.addingTimeInterval(Double(i) * 10)), convert: Self.same)
            else { Issue.record("within the limit"); return }
            #expect(status?.remainingRequests == 2 - i)
        }
        guard
            case .rejected(let r) = engine.admit(
                Self.tenant(plan), Self.request(at: t0.addingTimeInterval(30)), convert: Self.same)
        else { Issue.record("the fourth in a minute is over"); return }
        #expect(r.kind == .rateLimited && r.retryAfterSeconds == 30)
        #expect(r.rateLimits?.limitRequests == 3 && r.rateLimits?.remainingRequests == 0)
        if case .rejected = engine.admit(
            Self.tenant(plan), Self.request(at: t0.addingTimeInterval(60)), convert: Self.same)
        {
            Issue.record("the first request left the window at t0 + 60 s")
        }
        // Tokens: one request larger than the whole per-minute allowance never fits.
        guard
            case .rejected(let big) = engine.admit(
                Self.tenant(plan), Self.request(prompt: 20_000, at: t0.addingTimeInterval(200)), convert: Self.same)
        else { Issue.record("too many tokens"); return }
        #expect(big.retryAfterSeconds == 60)
        // Concurrency per key.
        var keyed = PolicyEngine()
        let tenant = Self.tenant(Plan(name: "p"), keyLimits: RateLimits(concurrent: 2))
        var held: [Reservation] = []
        for _ in 0..<2 {
            if case .admitted(let r, _) = keyed.admit(tenant, Self.request(at: t0), convert: Self.same) {
                held.append(r)
            }
        }
        if case .admitted = keyed.admit(tenant, Self.request(at: t0), convert: Self.same) {
            Issue.record("a third concurrent request is over the limit")
        }
        _ = keyed.settle(held[0], actual: Usage(), cost: nil, convert: Self.same)
        if case .rejected = keyed.admit(tenant, Self.request(at: t0), convert: Self.same) {
            Issue.record("one finished, so one more fits")
        }
    }

    @Test("model allow-list and output cap")
    func restrictions() {
        let plan = Plan(name: "small", allowedModels: ["m"], maxOutputTokens: 50)
        var engine = PolicyEngine()
        let now = Self.at("2026-11-15T10:00:00Z")
        guard
            case .rejected(let model) = engine.admit(
                Self.tenant(plan), Self.request(at: now, model: "big"), convert: Self.same)
        else { Issue.record("model"); return }
        #expect(model.kind == .modelNotAllowed && model.httpStatus == 403)
        guard
            case .rejected(let cap) = engine.admit(
                Self.tenant(plan), Self.request(maxOutput: 51, at: now), convert: Self.same)
        else { Issue.record("cap"); return }
        #expect(cap.kind == .maxOutputTooLarge && cap.httpStatus == 400)
    }

    @Test("counters restored from the ledger count against the budget")
    func restore() {
        let plan = Plan(name: "p", budget: Budget(limit: Money(nanos: 1_000_000, currency: "USD"), period: .month))
        var engine = PolicyEngine()
        let now = Self.at("2026-11-15T12:00:00Z")
        let missing = engine.missingCounters(Self.tenant(plan), model: "m", now: now)
        #expect(missing.count == 1 && missing[0].pool == .budget && missing[0].periodStart == Self.at("2026-11-01"))
        engine.restore(missing[0], used: 800_000)
        #expect(engine.missingCounters(Self.tenant(plan), model: "m", now: now).isEmpty)
        guard case .rejected = engine.admit(Self.tenant(plan), Self.request(at: now), convert: Self.same) else {
            Issue.record("0.0008 spent + 0.0003 estimate exceeds 0.001")
            return
        }
    }
}

@Suite("plans.yaml")
struct PlanBookTests {
    @Test("the shipped plans parse, and name only models the shipped config routes")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let policies = try Policies.load(configPath: root.appendingPathComponent("policies/gateway.yaml").path)
        #expect(policies.plans.defaultPlan == "payg")
        let payg = try #require(policies.plans.plans["payg"])
        let utc = TimeZone(identifier: "UTC")!
        #expect(payg.freeQuota?.allowance(at: CalendarPeriod.instant("2025-12-31")!, timeZone: utc) == 2_000_000)
        #expect(payg.freeQuota?.allowance(at: CalendarPeriod.instant("2026-01-01")!, timeZone: utc) == 500_000)
        let team = try #require(policies.plans.plans["team"])
        #expect(team.budget?.limit == Money(nanos: 500_000_000_000, currency: "USD"))
        #expect(team.freeQuota?.grantAmount == 5_000_000_000 && team.freeQuota?.grantDays == 30)
        #expect(policies.plans.plans["free"]?.keyLimits.requestsPerMinute == 20)
    }

    @Test(
        "errors name the file, the line and the reason",
        arguments: [
            ("default_plan: x\nplans:\n  y: {}\n", 1, "no plan named 'x'"),
            (
                "default_plan: p\nplans:\n  p:\n    budget: {limit: \"1.5.0\", currency: USD, period: month}\n", 4,
                "decimal"
            ),
            (
                "default_plan: p\nplans:\n  p:\n    free_quota:\n      period: month\n      schedule:\n        - {from: 2026-01-01, amount: 5}\n        - {from: 2025-01-01, amount: 9}\n",
                8, "must increase"
            ),
            (
                "default_plan: p\nplans:\n  p:\n    budget: {limit: \"1\", currency: USD, period: year}\n", 4,
                "expected one of"
            ),
        ])
    func errors(yaml: String, line: Int, reason: String) {
        do {
            _ = try PlanBook.parse(yaml: yaml, file: "plans.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == line, "\(error.description)")
            #expect(error.description.contains(reason), "\(error.description)")
        }
    }
}
