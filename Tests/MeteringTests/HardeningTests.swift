import Foundation
import Metering
import Testing

/// The domain's answers to hostile numbers and to the billing holes found by trying the gateway as a
/// hostile client would: nothing traps, and every split adds up.
@Suite("Hardening: extremes, cross-currency credit, grants, expiry")
struct HardeningTests {
    typealias P = PolicyEngineTests
    static let usdPrice = P.price
    static let cnyPrice = PriceEntry(
        id: "q@0", effectiveFrom: .distantPast, currency: "CNY", input: 2_000_000_000, output: 8_000_000_000)
    /// 1 CNY = 0.14 USD, and back at 7.
    static func fx(_ m: Money, _ c: String) -> Money? {
        if m.currency == c { return m }
        switch (m.currency, c) {
        case ("CNY", "USD"): return Money(nanos: (m.nanos * 14 + 50) / 100, currency: c)
        case ("USD", "CNY"): return Money(nanos: m.nanos * 7, currency: c)
        default: return nil
        }
    }
    static let now = P.at("2026-11-15T12:00:00Z")

    @Test("a cost that does not fit in 64 bits throws instead of trapping")
    func costOverflow() throws {
        #expect(throws: ArithmeticOverflow.self) {
            _ = try Self.usdPrice.cost(of: Usage(prompt: 0, completion: Int.max))
        }
        let dear = PriceEntry(id: "d@0", effectiveFrom: .distantPast, currency: "USD", input: .max, output: .max)
        #expect(throws: ArithmeticOverflow.self) { _ = try dear.cost(of: Usage(prompt: 1 << 40, completion: 1 << 40)) }
        #expect(try Self.usdPrice.cost(of: Usage(prompt: 1_000_000)) == Money(nanos: 1_000_000_000, currency: "USD"))
    }

    @Test("an estimate of Int.max output tokens is refused, not a trap; soft budgets saturate")
    func extremeEstimates() throws {
        let plan = Plan(
            name: "p", budget: Budget(limit: Money(nanos: 1_000, currency: "USD"), period: .month, hard: false))
        var engine = PolicyEngine()
        let huge = AdmissionRequest(
            model: "m", estimate: Usage(prompt: 10, completion: .max), requestedMaxOutput: .max, price: Self.usdPrice,
            now: Self.now)
        guard case .rejected(let r) = engine.admit(P.tenant(plan), huge, convert: P.same) else {
            Issue.record("an unpriceable estimate must be refused")
            return
        }
        #expect(r.kind == .requestTooLarge && r.httpStatus == 400)
        // Two estimates each near the 64-bit limit under a soft budget: admitted, reserved saturates.
        let big = PriceEntry(
            id: "b@0", effectiveFrom: .distantPast, currency: "USD", input: 0, output: 4_000_000_000_000_000_000)
        for _ in 0..<3 {
            let request = AdmissionRequest(
                model: "m", estimate: Usage(prompt: 0, completion: 2_000_000), requestedMaxOutput: nil, price: big,
                now: Self.now)
            guard case .admitted = engine.admit(P.tenant(plan), request, convert: P.same) else {
                Issue.record("a soft budget admits")
                return
            }
        }
    }

    @Test("USD free credit covers a CNY-priced model through the dated rate, at admission and settlement")
    func crossCurrencyCredit() throws {
        let quota = FreeQuota(
            unit: .credit(currency: "USD"), period: .month,
            schedule: [.init(year: 2026, month: 1, day: 1, amount: 1_000_000)])  // 0.001 USD
        let plan = Plan(
            name: "team", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 0, currency: "USD"), period: .month, hard: true))
        var engine = PolicyEngine()
        // Estimate 100 + 100 tokens at 2 and 8 CNY per million = 0.001 CNY = 0.00014 USD: the credit covers
        // it, so the zero budget needs nothing (this was a 429 with credit left).
        let request = AdmissionRequest(
            model: "q", estimate: Usage(prompt: 100, completion: 100), requestedMaxOutput: 100, price: Self.cnyPrice,
            now: Self.now)
        guard case .admitted(let reservation, _) = engine.admit(P.tenant(plan), request, convert: Self.fx) else {
            Issue.record("USD credit must cover a CNY request")
            return
        }
        #expect(reservation.free?.units == 140_000)
        #expect(reservation.budget?.units == 0)
        let actual = Usage(prompt: 100, completion: 50)
        let cost = try Self.cnyPrice.cost(of: actual)  // 0.0006 CNY
        let split = engine.settle(reservation, actual: actual, cost: cost, convert: Self.fx)
        #expect(split.freeUnits == 84_000)  // 0.0006 CNY in USD nano-units
        #expect(split.charged == .zero("CNY"))  // not charged again in full
        #expect(split.freeCost == cost)
        #expect(split.budgetCharge == .zero("USD"))
    }

    @Test("a credit that runs out mid-request splits pro rata across currencies; free + charged = cost")
    func crossCurrencyPartial() throws {
        let quota = FreeQuota(
            unit: .credit(currency: "USD"), period: .month,
            schedule: [.init(year: 2026, month: 1, day: 1, amount: 42_000)])
        let plan = Plan(name: "team", freeQuota: quota)
        var engine = PolicyEngine()
        let request = AdmissionRequest(
            model: "q", estimate: Usage(prompt: 100, completion: 50), requestedMaxOutput: 50, price: Self.cnyPrice,
            now: Self.now)
        guard case .admitted(let reservation, _) = engine.admit(P.tenant(plan), request, convert: Self.fx) else {
            Issue.record("admit")
            return
        }
        let actual = Usage(prompt: 100, completion: 50)
        let cost = try Self.cnyPrice.cost(of: actual)  // 600_000 CNY nanos = 84_000 USD nanos
        let split = engine.settle(reservation, actual: actual, cost: cost, convert: Self.fx)
        #expect(split.freeUnits == 42_000)
        #expect(split.freeCost?.nanos == 300_000 && split.charged?.nanos == 300_000)
        #expect(split.freeCost!.nanos + split.charged!.nanos == cost.nanos)
    }

    @Test("a credit in a currency with no rate to the model's is refused at admission, not silently skipped")
    func creditWithoutRate() {
        let quota = FreeQuota(
            unit: .credit(currency: "EUR"), period: .month,
            schedule: [.init(year: 2026, month: 1, day: 1, amount: 1_000_000)])
        var engine = PolicyEngine()
        let request = AdmissionRequest(
            model: "q", estimate: Usage(prompt: 1, completion: 1), requestedMaxOutput: 1, price: Self.cnyPrice,
            now: Self.now)
        guard
            case .rejected(let r) = engine.admit(P.tenant(Plan(name: "p", freeQuota: quota)), request, convert: Self.fx)
        else {
            Issue.record("no rate, no admission")
            return
        }
        #expect(r.kind == .noExchangeRate)
    }

    @Test("settlement draws actual usage from free, then grant, then budget, even past the estimate")
    func grantAtSettlement() throws {
        let quota = FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2026, month: 1, day: 1, amount: 300)],
            grantAmount: 1_000, grantDays: 30)
        let plan = Plan(
            name: "p", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 1_000_000_000, currency: "USD"), period: .month))
        var engine = PolicyEngine()
        // The estimate (200 tokens) fits in the periodic allowance alone...
        guard case .admitted(let r, _) = engine.admit(P.tenant(plan), P.request(at: Self.now), convert: P.same) else {
            Issue.record("admit")
            return
        }
        #expect(r.grant != nil)
        // ...but the upstream reports 500: 300 free, 200 from the grant, nothing paid.
        let actual = Usage(prompt: 100, completion: 400)
        let split = engine.settle(r, actual: actual, cost: try Self.usdPrice.cost(of: actual), convert: P.same)
        #expect(split.freeUnits == 300 && split.grantUnits == 200)
        #expect(split.charged == .zero("USD") && split.budgetCharge == .zero("USD"))
    }

    @Test("a zero budget fires no alert for a request that charged nothing")
    func zeroBudgetAlerts() throws {
        let quota = FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2026, month: 1, day: 1, amount: 1_000_000)])
        let plan = Plan(
            name: "p", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 0, currency: "USD"), period: .month, hard: false))
        var engine = PolicyEngine()
        guard case .admitted(let r, _) = engine.admit(P.tenant(plan), P.request(at: Self.now), convert: P.same) else {
            Issue.record("admit")
            return
        }
        let usage = Usage(prompt: 100, completion: 100)
        let split = engine.settle(r, actual: usage, cost: try Self.usdPrice.cost(of: usage), convert: P.same)
        #expect(split.charged == .zero("USD"))
        #expect(split.alerts.isEmpty)
    }

    @Test("the sweeper releases expired reservations once; a late settlement counts usage but releases nothing")
    func sweeper() throws {
        let plan = Plan(
            name: "p", budget: Budget(limit: Money(nanos: 600_000, currency: "USD"), period: .month),
            keyLimits: RateLimits(concurrent: 1))
        var engine = PolicyEngine(reservationTTL: 60)
        guard case .admitted(let r, _) = engine.admit(P.tenant(plan), P.request(at: Self.now), convert: P.same) else {
            Issue.record("admit")
            return
        }
        #expect(engine.inflight(scope: "k|key_a") == 1)
        #expect(engine.sweep(now: Self.now.addingTimeInterval(59)).isEmpty)
        let swept = engine.sweep(now: Self.now.addingTimeInterval(61))
        #expect(swept.map(\.id) == [r.id])
        #expect(engine.inflight(scope: "k|key_a") == 0 && engine.outstandingCount == 0)
        let usage = Usage(prompt: 100, completion: 100)
        _ = engine.settle(r, actual: usage, cost: try Self.usdPrice.cost(of: usage), convert: P.same)
        #expect(engine.inflight(scope: "k|key_a") == 0)
        let standing = engine.remaining(P.tenant(plan), model: "m", now: Self.now)
        #expect(standing.values.map(\.used) == [300_000] && standing.values.map(\.reserved) == [0])
    }

    @Test("a settlement the ledger refused is reverted: counters equal the stored records again")
    func revert() throws {
        let quota = FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2026, month: 1, day: 1, amount: 150)])
        let plan = Plan(
            name: "p", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 1_000_000_000, currency: "USD"), period: .month))
        var engine = PolicyEngine()
        guard case .admitted(let r, _) = engine.admit(P.tenant(plan), P.request(at: Self.now), convert: P.same) else {
            Issue.record("admit")
            return
        }
        let usage = Usage(prompt: 100, completion: 100)
        let split = engine.settle(r, actual: usage, cost: try Self.usdPrice.cost(of: usage), convert: P.same)
        #expect(split.freeUnits == 150 && (split.budgetCharge?.nanos ?? 0) > 0)
        engine.revert(r, split)
        let standing = engine.remaining(P.tenant(plan), model: "m", now: Self.now)
        #expect(standing.values.allSatisfy { $0.used == 0 && $0.reserved == 0 })
    }

    @Test("usage reports with negative or absurd counts are not believed")
    func implausibleUsage() throws {
        #expect(Usage.openAI(try JSONReader.parse(Array(#"{"prompt_tokens":-5,"completion_tokens":3}"#.utf8))) == nil)
        #expect(
            Usage.openAI(
                try JSONReader.parse(Array(#"{"prompt_tokens":1,"completion_tokens":9223372036854775807}"#.utf8)))
                == nil)
        #expect(
            Usage.anthropic(
                try JSONReader.parse(Array(#"{"input_tokens":1,"cache_read_input_tokens":9223372036854775807}"#.utf8)))
                == nil)
        let capped = Usage.openAI(
            try JSONReader.parse(
                Array(#"{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":50}}"#.utf8))
        )
        #expect(capped == Usage(prompt: 10, completion: 3, cachedPrompt: 10))
    }

    @Test("duplicate top-level members are refused; nested ones are the client's business")
    func duplicateKeys() throws {
        let body = Array(#"{"model":"cheap","messages":[],"model":"dear"}"#.utf8)
        #expect(throws: JSONError.self) { _ = try JSONReader.parseTopLevelObject(body) }
        #expect(throws: RequestError.self) { _ = try RequestParser.parse(endpoint: .chatCompletions, body: body) }
        let nested = Array(#"{"model":"m","metadata":{"a":1,"a":2},"messages":[]}"#.utf8)
        #expect(try RequestParser.parse(endpoint: .chatCompletions, body: nested).model == "m")
        // Past a few members the parser tracks keys in a set: a repeat is still refused, early or late.
        let many = (0..<40).map { #""k\#($0)":\#($0)"# }
        let wide = Array(("{" + many.joined(separator: ",") + "}").utf8)
        let (_, spans) = try JSONReader.parseTopLevelObject(wide)
        #expect(spans.count == 40)
        #expect(spans["k37"].map { String(decoding: wide[$0], as: UTF8.self) } == "37")
        for repeated in ["k3", "k20", "k39"] {
            let again = Array(("{" + many.joined(separator: ",") + #","\#(repeated)":0}"#).utf8)
            #expect(throws: JSONError.self) { _ = try JSONReader.parseTopLevelObject(again) }
        }
        let early = Array(#"{"a":1,"b":2,"a":3}"#.utf8)
        #expect(throws: JSONError.self) { _ = try JSONReader.parseTopLevelObject(early) }
    }

    @Test("a request whose strings are not valid UTF-8 is refused; an upstream's is repaired and still read")
    func invalidUTF8() throws {
        let body: [UInt8] =
            Array(#"{"model":"m","messages":[{"role":"user","content":""#.utf8) + [0xFF, 0xFE]
            + Array(#""}]}"#.utf8)
        #expect(throws: RequestError.self) { _ = try RequestParser.parse(endpoint: .chatCompletions, body: body) }
        let escaped =
            Array(#"{"model":"m","messages":[{"role":"user","content":"a\u00e9\n"#.utf8) + [0xC3]
            + Array(#""}]}"#.utf8)
        #expect(throws: RequestError.self) { _ = try RequestParser.parse(endpoint: .chatCompletions, body: escaped) }
        let upstream: [UInt8] =
            Array(#"{"usage":{"prompt_tokens":3,"completion_tokens":1},"x":""#.utf8) + [0xFF]
            + Array(#""}"#.utf8)
        #expect(try JSONReader.parse(upstream)["usage"]?["prompt_tokens"]?.intValue == 3)
        #expect(throws: JSONError.self) { _ = try JSONReader.parse(upstream, strictUTF8: true) }
    }

    @Test("model names with control characters or over 256 bytes, and n out of range, are refused")
    func requestFields() throws {
        for body in [
            #"{"model":"a\u0000b","messages":[]}"#,
            #"{"model":"\#(String(repeating: "x", count: 300))","messages":[]}"#,
            #"{"model":"m","n":0,"messages":[]}"#, #"{"model":"m","n":129,"messages":[]}"#,
            #"{"model":"m","max_tokens":-1,"messages":[]}"#, #"{"model":"m","max_tokens":1e400,"messages":[]}"#,
        ] {
            #expect(throws: RequestError.self, "\(body)") {
                _ = try RequestParser.parse(endpoint: .chatCompletions, body: Array(body.utf8))
            }
        }
        let parsed = try RequestParser.parse(
            endpoint: .chatCompletions,
            body: Array(#"{"model":"m","n":3,"max_completion_tokens":7,"messages":[]}"#.utf8))
        #expect(parsed.choices == 3 && parsed.maxOutputTokens == 7 && parsed.maxOutputParam == "max_completion_tokens")
    }

    @Test("the output cap the reservation was made for is added upstream only when the client set none")
    func outputCap() throws {
        let bare = try RequestParser.parse(
            endpoint: .chatCompletions, body: Array(#"{"model":"m","messages":[]}"#.utf8))
        let capped = try JSONReader.parse(
            bare.upstreamBody(model: "m", requestUsage: false, outputCap: ("max_completion_tokens", 4096)))
        #expect(capped["max_completion_tokens"]?.intValue == 4096)
        let own = try RequestParser.parse(
            endpoint: .chatCompletions, body: Array(#"{"model":"m","max_tokens":5,"messages":[]}"#.utf8))
        let kept = try JSONReader.parse(
            own.upstreamBody(model: "m", requestUsage: false, outputCap: ("max_tokens", 4096)))
        #expect(kept["max_tokens"]?.intValue == 5 && kept["max_completion_tokens"] == nil)
    }

    @Test("CSV cells that a spreadsheet would run as formulas are neutralised")
    func csvInjection() {
        #expect(BillingExportFormat.csvField("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"")
        #expect(BillingExportFormat.csvField("+1") == "'+1")
        #expect(BillingExportFormat.csvField("-1") == "'-1")
        #expect(BillingExportFormat.csvField("@SUM(A1)") == "'@SUM(A1)")
        #expect(BillingExportFormat.csvField("\tx") == "'\tx")
        #expect(BillingExportFormat.csvField("\rx") == "\"'\rx\"")
        #expect(BillingExportFormat.csvField("acme") == "acme")
        #expect(BillingExportFormat.csvField("0.000002500") == "0.000002500")
    }

    @Test("a sum of money is checked: another currency or an overflow is nil, not a trap")
    func moneySum() {
        #expect(Money(nanos: 1, currency: "USD").adding(Money(nanos: 2, currency: "USD"))?.nanos == 3)
        #expect(Money(nanos: 1, currency: "USD").adding(Money(nanos: 2, currency: "CNY")) == nil)
        #expect(Money(nanos: .max, currency: "USD").adding(Money(nanos: 1, currency: "USD")) == nil)
        let book = PriceBook(
            entries: [:], fx: ["USD/CNY": [(from: .distantPast, rate: 7_000_000_000)]])
        #expect(book.convert(Money(nanos: .max, currency: "USD"), to: "CNY", at: Date()) == nil)
        #expect(book.convert(Money(nanos: 2, currency: "USD"), to: "CNY", at: Date())?.nanos == 14)
    }

    @Test("checked and saturating integer helpers")
    func checkedHelpers() throws {
        #expect(throws: ArithmeticOverflow.self) { _ = try Int.max.checkedAdding(1, "x") }
        #expect(throws: ArithmeticOverflow.self) { _ = try Int64.max.checkedMultiplying(2, "x") }
        #expect(Int64.max.saturatingAdding(5) == .max && Int64.min.saturatingSubtracting(5) == .min)
        var v: Int64 = .max - 1
        v.saturatingAdd(10)
        #expect(v == .max)
    }
}
