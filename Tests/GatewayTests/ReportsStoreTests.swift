import Foundation
import Logging
import Metering
import NIOPosix
import Testing

@testable import Gateway

/// The forecast over a real ledger: records seeded at a known rate give the exhaustion instant and the
/// projected total computed by hand.
@Suite("Reports over a store")
struct ReportsStoreTests {
    @Test("forecast: a ledger seeded at a known rate runs the free quota and the budget out when expected")
    func forecastOnSeededLedger() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-forecast-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try GatewayStore(dataDirectory: dir)
        let ledger = SQLiteLedger(store: store)
        let quota = FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2020, month: 1, day: 1, amount: 500_000)])
        let plan = Plan(
            name: "p", freeQuota: quota,
            budget: Budget(limit: Money(nanos: 1_000_000_000, currency: "USD"), period: .month))
        let policy = PolicyService(
            plans: PlanBook(plans: ["p": plan], defaultPlan: "p"), prices: PriceBook(entries: [:]), store: store,
            notifier: AlertNotifier(
                webhook: nil, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "t")),
            metrics: GatewayMetrics())
        let tenant = try store.createTenant(name: "steady", timezone: "UTC")
        // One record a minute over the hour before `now`, each 1,000 free tokens and 0.0005 USD against the
        // budget; `now` is an hour after the tenant's creation, or, if that hour spans a month's start, an
        // hour into the new month, so every record is in the month of `now`.
        let utc = TimeZone(identifier: "UTC")!
        var now = tenant.createdAt.addingTimeInterval(3_600)
        let month = CalendarPeriod.containing(now, kind: .month, timeZone: utc)
        if now.addingTimeInterval(-3_600) < month.start { now = month.start.addingTimeInterval(3_600) }
        for minute in 0..<60 {
            let start = now.addingTimeInterval(-3_600 + Double(minute) * 60 + 1)
            var r = BillingRecord(
                id: BillingRecord.newID(), requestID: "r\(minute)", tenantID: tenant.id, keyID: "k", startedAt: start,
                endedAt: start, timeToFirstTokenMs: nil, endpoint: "/v1/chat/completions", model: "m",
                upstreamModel: "m", provider: "p", stream: false, status: .completed, httpStatus: 200, error: nil,
                usage: Usage(prompt: 2_000, completion: 0), usageSource: .upstream, localPromptTokens: 2_000,
                localCompletionTokens: 0, localIsEstimate: false, priceEntry: "m@0",
                cost: Money(nanos: 1_000_000, currency: "USD"))
            r.freeUnits = 1_000
            r.charged = Money(nanos: 500_000, currency: "USD")
            r.budgetCharge = Money(nanos: 500_000, currency: "USD")
            try await ledger.append(r)
        }
        let table = try await Reports(store: store).forecast(tenant: tenant, policy: policy, now: now)
        let rows = Dictionary(
            table.rows.map { row in (Self.text(row[1]), Dictionary(uniqueKeysWithValues: zip(table.columns, row))) },
            uniquingKeysWith: { a, _ in a })
        let free = try #require(rows["free"])
        let budget = try #require(rows["budget"])
        // The rate's window: the tenant's age (one hour, or a little more), at least an hour.
        let window = max(3_600, now.timeIntervalSince(tenant.createdAt))
        let end = CalendarPeriod.containing(now, kind: .month, timeZone: utc).end
        let left = Int64(end.timeIntervalSince(now).rounded(.down))
        func perDay(_ usage: Int64) -> Int64 { Int64((Double(usage) * 86_400 / window).rounded()) }
        func runsOut(_ used: Int64, _ limit: Int64, _ usage: Int64) -> String {
            let at = now.addingTimeInterval(Double(limit - used) * window / Double(usage))
            return at < end ? BillingExportFormat.timestamp(at) : ""
        }
        func projected(_ used: Int64, _ usage: Int64) -> Int64 { used + Int64(Double(usage * left) / window) }
        // Free: 60,000 of 500,000 tokens used, 60,000 in the window.
        #expect(Self.text(free["used"]) == "60000" && Self.text(free["limit"]) == "500000")
        #expect(Self.text(free["rate_per_day"]) == String(perDay(60_000)))
        #expect(Self.text(free["runs_out_at"]) == runsOut(60_000, 500_000, 60_000))
        #expect(Self.text(free["projected_total"]) == String(projected(60_000, 60_000)))
        // Budget: 0.03 of 1.00 USD.
        #expect(Self.text(budget["used"]) == "0.030000000")
        #expect(Self.text(budget["rate_per_day"]) == Money(nanos: perDay(30_000_000), currency: "USD").decimalString)
        #expect(Self.text(budget["runs_out_at"]) == runsOut(30_000_000, 1_000_000_000, 30_000_000))
        #expect(
            Self.text(budget["projected_total"])
                == Money(nanos: projected(30_000_000, 30_000_000), currency: "USD").decimalString)
        // In the simple case, by hand: empty 7 h 20 min and 32 h 20 min from now.
        if window == 3_600 {
            #expect(Self.text(free["rate_per_day"]) == "1440000")
            #expect(
                runsOut(60_000, 500_000, 60_000).isEmpty
                    || runsOut(60_000, 500_000, 60_000) == BillingExportFormat.timestamp(now.addingTimeInterval(26_400))
            )
        }
    }

    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s
        case .number(let n)?: return n
        default: return ""
        }
    }
}
