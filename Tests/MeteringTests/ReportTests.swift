import Foundation
import Metering
import TestSupport
import Testing

@Suite("Reports: inflation, what-if, forecast")
struct ReportTests {
    static let utc = TimeZone(identifier: "UTC")!
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let jan1 = CalendarPeriod.instant("2026-01-01")!

    /// Two models in USD (one repriced on 2026-02-01), one in CNY.
    static let book = PriceBook(entries: [
        "a": [
            PriceEntry(
                id: "a@2025-01-01", effectiveFrom: .distantPast, currency: "USD", input: 1_000_000_000,
                cachedInput: 500_000_000, output: 4_000_000_000),
            PriceEntry(
                id: "a@2026-02-01", effectiveFrom: CalendarPeriod.instant("2026-02-01")!, currency: "USD",
                input: 1_500_000_000, cachedInput: 700_000_000, output: 5_000_000_000),
        ],
        "b": [
            PriceEntry(
                id: "b@2025-01-01", effectiveFrom: .distantPast, currency: "USD", input: 3_000_000_000,
                output: 15_000_000_000)
        ],
        "q": [
            PriceEntry(
                id: "q@2025-01-01", effectiveFrom: .distantPast, currency: "CNY", input: 800_000_000,
                output: 2_000_000_000)
        ],
    ])

    static func record(
        tenant: String, model: String, at: Date, usage: Usage, status: BillingRecord.Status = .completed,
        book: PriceBook = book
    ) -> BillingRecord {
        let entry = book.price(for: model, at: at)
        return BillingRecord(
            id: BillingRecord.newID(), requestID: "req", tenantID: tenant, keyID: "k", startedAt: at,
            endedAt: at.addingTimeInterval(1), timeToFirstTokenMs: nil, endpoint: "/v1/chat/completions", model: model,
            upstreamModel: model, provider: "p", stream: false, status: status, httpStatus: 200, error: nil,
            usage: usage, usageSource: .upstream, localPromptTokens: usage.prompt,
            localCompletionTokens: usage.completion, localIsEstimate: false, priceEntry: entry?.id,
            cost: status == .rejected ? nil : try? entry?.cost(of: usage))
    }

    /// Random traffic over 75 days for two tenants (one in Shanghai), three models, every status.
    static func traffic(seed: UInt64, count: Int) -> [BillingRecord] {
        var rng = SplitMix(seed: seed)
        let statuses: [BillingRecord.Status] = [.completed, .completed, .completed, .upstreamCut, .rejected]
        return (0..<count).map { _ in
            let prompt = Int(rng.next() % 20_000)
            let usage = Usage(
                prompt: prompt, completion: Int(rng.next() % 4_000), cachedPrompt: Int(rng.next() % UInt64(prompt + 1)),
                reasoning: Int(rng.next() % 500))
            return record(
                tenant: rng.next() % 2 == 0 ? "t-utc" : "t-sh", model: ["a", "b", "q"][Int(rng.next() % 3)],
                at: jan1.addingTimeInterval(Double(rng.next() % (75 * 86_400))), usage: usage,
                status: statuses[Int(rng.next() % 5)])
        }
    }

    static func zone(_ tenant: String) -> TimeZone { tenant == "t-sh" ? shanghai : utc }

    @Test("inflation: totals equal the records', by day, week and month; every change's parts sum to it exactly")
    func inflationTotals() throws {
        let records = Self.traffic(seed: 7, count: 3_000)
        for kind in CalendarPeriod.Kind.allCases {
            let report = InflationReport.build(records: records, by: kind, timeZone: Self.zone, prices: Self.book)
            for currency in ["USD", "CNY", ""] {
                let expected = records.filter { ($0.cost?.currency ?? "") == currency }
                let rows = report.rows.filter { $0.currency == currency }
                #expect(rows.map(\.cost).reduce(0, +) == expected.compactMap(\.cost?.nanos).reduce(0, +))
                #expect(rows.map(\.requests).reduce(0, +) == Int64(expected.filter { $0.status != .rejected }.count))
                #expect(rows.map(\.promptTokens).reduce(0, +) == Int64(expected.map(\.usage.prompt).reduce(0, +)))
                #expect(rows.map(\.cachedTokens).reduce(0, +) == Int64(expected.map(\.usage.cachedPrompt).reduce(0, +)))
            }
            #expect(!report.changes.isEmpty)
            for change in report.changes {
                #expect(
                    change.volume + change.mix + change.intensity + change.price == change.cost - change.previousCost)
            }
            // Each row's bucket is its tenant's own: midnight in Shanghai is 16:00 UTC.
            let shanghaiRow = try #require(report.rows.first { $0.tenantID == "t-sh" })
            let hour = Calendar(identifier: .gregorian).dateComponents(in: Self.utc, from: shanghaiRow.bucket.start)
                .hour
            #expect(hour == 16)
        }
    }

    @Test("inflation: each part of a change moves alone when only its cause changes")
    func decompositionParts() throws {
        let jan = Self.jan1.addingTimeInterval(3_600)
        let feb = CalendarPeriod.instant("2026-02-10")!
        let mar = CalendarPeriod.instant("2026-03-10")!
        let base = Usage(prompt: 1_000, completion: 100)
        func build(_ records: [BillingRecord]) -> InflationReport.Change? {
            InflationReport.build(records: records, by: .month, timeZone: { _ in Self.utc }, prices: Self.book)
                .changes.first
        }
        // Volume: twice the requests, same model, tokens and price (model b: no price change).
        let volume = try #require(
            build(
                (0..<10).map { _ in Self.record(tenant: "t", model: "b", at: jan, usage: base) }
                    + (0..<20).map { _ in Self.record(tenant: "t", model: "b", at: feb, usage: base) }))
        let perRequest: Int64 = 3_000_000 + 1_500_000  // 1,000 x 3 USD + 100 x 15 USD per million, in nano-USD
        #expect(volume.volume == 10 * perRequest && volume.mix == 0 && volume.intensity == 0 && volume.price == 0)
        // Intensity: same requests, twice the tokens.
        let intensity = try #require(
            build(
                (0..<10).map { _ in Self.record(tenant: "t", model: "b", at: jan, usage: base) }
                    + (0..<10).map { _ in
                        Self.record(tenant: "t", model: "b", at: feb, usage: Usage(prompt: 2_000, completion: 200))
                    }))
        #expect(intensity.volume == 0 && intensity.mix == 0 && intensity.price == 0)
        #expect(intensity.intensity == 10 * perRequest)
        // Price: model a's entry changes on 2026-02-01; same requests and tokens.
        let price = try #require(
            build(
                (0..<10).map { _ in Self.record(tenant: "t", model: "a", at: jan, usage: base) }
                    + (0..<10).map { _ in Self.record(tenant: "t", model: "a", at: feb, usage: base) }))
        #expect(price.volume == 0 && price.mix == 0 && price.intensity == 0)
        #expect(price.price == 10 * ((1_500_000 + 500_000) - (1_000_000 + 400_000)))
        // Mix: same requests, tokens and prices, shifted from a cheap model to a dear one (both used before).
        let mix = try #require(
            build(
                (0..<5).flatMap { _ in
                    [
                        Self.record(tenant: "t", model: "b", at: feb, usage: base),
                        Self.record(tenant: "t", model: "a", at: feb, usage: base),
                    ]
                } + (0..<8).map { _ in Self.record(tenant: "t", model: "b", at: mar, usage: base) }
                    + (0..<2).map { _ in Self.record(tenant: "t", model: "a", at: mar, usage: base) }))
        #expect(mix.volume == 0 && mix.intensity == 0 && mix.price == 0)
        #expect(mix.mix == 3 * (perRequest - (1_500_000 + 500_000)))
    }

    @Test("what-if: totals equal repricing every completed record by hand, in the other book's currency")
    func whatIf() throws {
        let records = Self.traffic(seed: 11, count: 2_000)
        // A competitor's list: a in CNY, b cheaper, q missing.
        let other = PriceBook(entries: [
            "a": [
                PriceEntry(
                    id: "a@x", effectiveFrom: .distantPast, currency: "CNY", input: 7_000_000_000,
                    output: 21_000_000_000)
            ],
            "b": [
                PriceEntry(
                    id: "b@x", effectiveFrom: .distantPast, currency: "USD", input: 1_000_000_000,
                    cachedInput: 100_000_000, output: 2_000_000_000)
            ],
        ])
        let report = WhatIfReport.build(records: records, prices: other)
        for row in report.rows {
            let mine = records.filter {
                $0.status == .completed && $0.tenantID == row.tenantID && $0.model == row.model
            }
            let entry = other.price(for: row.model, at: Self.jan1)
            #expect(row.records == Int64(mine.count))
            #expect(row.actualCost == mine.compactMap(\.cost?.nanos).reduce(0, +))
            let byHand = try mine.map { try entry?.cost(of: $0.usage).nanos ?? 0 }.reduce(0, +)
            #expect(row.whatIfCost == byHand)
            #expect(row.whatIfCurrency == (entry?.currency ?? ""))
            #expect(row.unpriced == (entry == nil ? Int64(mine.count) : 0))
        }
        // At a later instant under the project's own book: model a at its February price.
        let later = WhatIfReport.build(
            records: records.filter { $0.startedAt < CalendarPeriod.instant("2026-02-01")! }, prices: Self.book,
            at: CalendarPeriod.instant("2026-03-01")!)
        let a = try #require(later.rows.first { $0.model == "a" && $0.tenantID == "t-utc" })
        #expect(a.whatIfCost > a.actualCost)
    }

    @Test("forecast: a known rate runs a pool out at the computed instant")
    func forecast() {
        let start = CalendarPeriod.instant("2026-03-01")!
        let end = CalendarPeriod.instant("2026-04-01")!
        let now = CalendarPeriod.instant("2026-03-11")!
        // 1,000 tokens an hour over the last 7 days; 400,000 used of 500,000.
        let f = PoolForecast.project(
            used: 400_000, limit: 500_000, periodStart: start, periodEnd: end, windowUsage: 168_000,
            window: 7 * 86_400, now: now)
        #expect(f.ratePerDay == 24_000)
        #expect(f.runsOutAt == now.addingTimeInterval(100 * 3_600))
        #expect(f.projectedTotal == 400_000 + 21 * 24_000)
        let never = PoolForecast.project(
            used: 10, limit: 500_000, periodStart: start, periodEnd: end, windowUsage: 0, window: 86_400, now: now)
        #expect(never.runsOutAt == nil && never.projectedTotal == 10)
        let spent = PoolForecast.project(
            used: 600_000, limit: 500_000, periodStart: start, periodEnd: end, windowUsage: 5, window: 86_400, now: now)
        #expect(spent.runsOutAt == now)
    }
}
