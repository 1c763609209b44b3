import Foundation
import Metering
import Testing

@Suite("Money and the price book")
struct PriceBookTests {
    static let book = """
        timezone: Asia/Shanghai
        prices:
          demo/gpt:
            - {effective_from: "2025-05-01T00:00:00Z", currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
          demo/doubao:
            - {effective_from: 2024-05-15, currency: CNY, input: "0.8", output: "2.0", source: "2024 price war"}
            - {effective_from: 2026-01-01, currency: CNY, input: "4.0", output: "10.0", source: "illustrative increase"}
          demo/reasoner:
            - {effective_from: 2025-01-01, currency: USD, input: "15.00", output: "15.00", reasoning: "60.00"}
          demo/claude:
            - {effective_from: 2025-01-01, currency: USD, input: "3.00", cached_input: "0.30", cache_write: "3.75", output: "15.00"}
          demo/tiny:
            - {effective_from: 2025-01-01, currency: USD, input: "0.000000001", output: "0"}
        fx:
          - {effective_from: 2026-01-01, rates: {CNY/USD: "0.138"}}
        """

    static func instant(_ s: String) -> Date {
        let f = ISO8601DateFormatter()
        return f.date(from: s)!
    }

    @Test("decimal strings parse exactly, never through floating point")
    func parsing() {
        #expect(Money.parseNanos("2.50") == 2_500_000_000)
        #expect(Money.parseNanos("0.0008") == 800_000)
        #expect(Money.parseNanos("12") == 12_000_000_000)
        #expect(Money.parseNanos("0.000000001") == 1)
        #expect(Money.parseNanos("0.0000000001") == nil, "more than nine decimals")
        #expect(Money.parseNanos("1e3") == nil)
        #expect(Money.parseNanos("-1") == nil)
        #expect(Money(nanos: 4_750_000, currency: "USD").decimalString == "0.004750000")
    }

    @Test("USD with cached input: 200×2.50 + 1000×1.25 + 300×10.00 per million = 0.00475 USD")
    func usd() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let entry = try #require(book.price(for: "demo/gpt", at: Self.instant("2026-11-01T00:00:00Z")))
        let cost = try entry.cost(of: Usage(prompt: 1200, completion: 300, cachedPrompt: 1000))
        #expect(cost == Money(nanos: 4_750_000, currency: "USD"))
        #expect(entry.id == "demo/gpt@2025-05-01T00:00:00Z")
    }

    @Test("CNY, and the price change at its effective instant: local midnight in Asia/Shanghai")
    func cnyPriceChange() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let usage = Usage(prompt: 1000, completion: 500)
        // 2026-01-01 00:00 in Shanghai is 2025-12-31 16:00 UTC.
        let before = try #require(book.price(for: "demo/doubao", at: Self.instant("2025-12-31T15:59:59Z")))
        let after = try #require(book.price(for: "demo/doubao", at: Self.instant("2025-12-31T16:00:00Z")))
        // 1000×0.8 + 500×2.0 = 1800 per million → 0.0018 CNY; then 1000×4 + 500×10 = 9000 → 0.009 CNY.
        #expect(try before.cost(of: usage) == Money(nanos: 1_800_000, currency: "CNY"))
        #expect(try after.cost(of: usage) == Money(nanos: 9_000_000, currency: "CNY"))
        #expect(book.price(for: "demo/doubao", at: Self.instant("2024-01-01T00:00:00Z")) == nil)
    }

    @Test("reasoning billed apart: 200×15 + 800×60 per million = 0.051 USD")
    func reasoning() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let entry = try #require(book.price(for: "demo/reasoner", at: Self.instant("2026-01-01T00:00:00Z")))
        #expect(
            try entry.cost(of: Usage(prompt: 0, completion: 1000, reasoning: 800))
                == Money(nanos: 51_000_000, currency: "USD"))
    }

    @Test("cache reads and writes: 10×3 + 200×0.30 + 50×3.75 + 7×15 per million = 0.0003825 USD")
    func cacheWrites() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let entry = try #require(book.price(for: "demo/claude", at: Self.instant("2026-01-01T00:00:00Z")))
        let usage = Usage(prompt: 260, completion: 7, cachedPrompt: 200, cacheWrite: 50)
        #expect(try entry.cost(of: usage) == Money(nanos: 382_500, currency: "USD"))
    }

    @Test("one rounding per record, half up; sums of records are exact")
    func rounding() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let entry = try #require(book.price(for: "demo/tiny", at: Self.instant("2026-01-01T00:00:00Z")))
        #expect(try entry.cost(of: Usage(prompt: 499_999)).nanos == 0)
        #expect(try entry.cost(of: Usage(prompt: 500_000)).nanos == 1)
        #expect(try entry.cost(of: Usage(prompt: 1_500_000)).nanos == 2)
        let records = try (1...100).map { try entry.cost(of: Usage(prompt: $0 * 10_000)) }
        let total = try #require(records.reduce(Money.zero("USD") as Money?) { $0?.adding($1) })
        #expect(total.nanos == records.map(\.nanos).reduce(0, +))
    }

    @Test("conversion needs a dated rate; there is no silent default")
    func fx() throws {
        let book = try PriceBook.parse(yaml: Self.book, file: "prices.yaml")
        let cny = Money(nanos: 1_800_000_000, currency: "CNY")
        #expect(
            book.convert(cny, to: "USD", at: Self.instant("2026-06-01T00:00:00Z"))
                == Money(nanos: 248_400_000, currency: "USD"))
        #expect(book.convert(cny, to: "USD", at: Self.instant("2025-06-01T00:00:00Z")) == nil)
        #expect(book.convert(cny, to: "EUR", at: Self.instant("2026-06-01T00:00:00Z")) == nil)
    }

    @Test(
        "mistakes are located",
        arguments: [
            (
                "prices:\n  m:\n    - {effective_from: 2025-01-01, currency: USD, input: 2.5.0, output: \"1\"}\n", 3,
                "decimal"
            ),
            (
                "prices:\n  m:\n    - {effective_from: 2025-01-01, currency: usd, input: \"1\", output: \"1\"}\n", 3,
                "ISO 4217"
            ),
            (
                "prices:\n  m:\n    - {effective_from: soon, currency: USD, input: \"1\", output: \"1\"}\n", 3,
                "RFC 3339"
            ),
        ])
    func errors(yaml: String, line: Int, reason: String) {
        do {
            _ = try PriceBook.parse(yaml: yaml, file: "p.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains(reason), "\(error)")
        }
    }
}

@Suite("The shipped price book")
struct ShippedPriceBookTests {
    @Test("policies/prices.yaml parses, prices every mock model, and has a dated history")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let book = try PriceBook.load(path: root.appendingPathComponent("policies/prices.yaml").path)
        let config = try GatewayConfig.load(path: root.appendingPathComponent("policies/gateway.yaml").path)
        let now = Date()
        for model in config.models where config.providers[model.provider]?.kind == .mock {
            #expect(book.price(for: model.priceID, at: now) != nil, "\(model.priceID)")
        }
        #expect(book.entries.values.contains { $0.count >= 3 }, "at least one model has a price history")
        // The mock-gpt-4o-mini history: a cut on 2025-07-01, an increase on 2026-06-01.
        let cut = try #require(book.price(for: "mock-gpt-4o-mini", at: PriceBookTests.instant("2025-08-01T00:00:00Z")))
        let raised = try #require(
            book.price(for: "mock-gpt-4o-mini", at: PriceBookTests.instant("2026-07-01T00:00:00Z")))
        #expect(cut.input == 100_000_000)
        #expect(raised.input == 400_000_000)
    }
}
