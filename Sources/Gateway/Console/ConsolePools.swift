import Foundation
import Metering

/// The quota, what-if and records pages: the forecast and what-if reports the admin API serves, and the
/// ledger's own records.
extension Console {
    /// One row of the forecast report, read back from its cells (the same text the admin API gives).
    struct PoolRow {
        var cells: [String: JSONValue]
        var pool: String
        var unit: String
        var start: Date
        var end: Date
        var used: Int64
        var limit: Int64?
        var runsOut: Date?
        var projected: Int64

        init?(columns: [String], cells row: [JSONValue]) {
            cells = Dictionary(zip(columns, row), uniquingKeysWith: { a, _ in a })
            guard let pool = cells["pool"]?.text, let unit = cells["unit"]?.text,
                let start = cells["period_start"]?.text.flatMap({ CalendarPeriod.instant($0) }),
                let end = cells["period_end"]?.text.flatMap({ CalendarPeriod.instant($0) })
            else { return nil }
            let amount = { (v: JSONValue?) -> Int64? in
                guard let text = v?.text else { return nil }
                return unit == "tokens" ? Int64(text) : Money.parseNanos(text)
            }
            self.pool = pool
            self.unit = unit
            self.start = start
            self.end = end
            used = amount(cells["used"]) ?? 0
            limit = amount(cells["limit"])
            runsOut = cells["runs_out_at"]?.text.flatMap { CalendarPeriod.instant($0) }
            projected = amount(cells["projected_total"]) ?? used
        }

        /// What a record draws from this pool.
        func drawn(by r: BillingRecord) -> Int64 {
            switch pool {
            case "free": return r.freeUnits
            case "grant": return r.grantUnits
            case "budget": return r.budgetCharge.flatMap { $0.currency == unit ? $0.nanos : nil } ?? 0
            default: return r.charged.flatMap { $0.currency == unit ? $0.nanos : nil } ?? 0
            }
        }

        func format(_ v: Int64) -> String { unit == "tokens" ? String(v) : ConsoleFormat.money(v) }
    }

    func quota(_ scope: Scope) async throws -> HTML {
        let reports = Reports(store: store)
        let forecast = try await reports.forecast(tenant: scope.tenant, policy: policy, now: scope.now)
        let pools = forecast.rows.compactMap { PoolRow(columns: forecast.columns, cells: $0) }
        // Each pool's usage per day of its period so far, from the records, for the line up to now.
        var perDay = [[Date: Int64]](repeating: [:], count: pools.count)
        if let earliest = pools.map(\.start).min(), earliest < scope.now {
            try await reports.each(.init(from: earliest, to: scope.now, tenantID: scope.tenant.id)) { r in
                let day = CalendarPeriod.containing(r.startedAt, kind: .day, timeZone: scope.zone).start
                for (i, p) in pools.enumerated() where r.startedAt >= p.start && r.startedAt < p.end {
                    perDay[i][day, default: 0].saturatingAdd(p.drawn(by: r))
                }
            }
        }
        var parts: [HTML] = []
        let names = ["free": "Free quota", "grant": "Free grant", "budget": "Budget", "spend": "Spend this month"]
        for (i, p) in pools.enumerated() {
            var cumulative: Int64 = 0
            // Remaining, never below zero (a request that crosses the limit may overshoot it); spend rows
            // have no limit and show what was spent.
            let remaining = { (used: Int64) in p.limit.map { max(0, $0.saturatingSubtracting(used)) } ?? used }
            var actual: [(Date, Int64)] = [(p.start, remaining(0))]
            for day in ConsoleFormat.days(from: p.start, to: min(p.end, scope.now), zone: scope.zone)
            where day.end < scope.now {
                cumulative.saturatingAdd(perDay[i][day.start] ?? 0)
                actual.append((max(p.start, day.end), remaining(cumulative)))
            }
            actual.append((scope.now, remaining(p.used)))
            var projected: [(Date, Int64)] = [(scope.now, remaining(p.used))]
            if let runsOut = p.runsOut, p.limit != nil {
                projected.append((runsOut, 0))
            } else {
                projected.append((p.end, remaining(p.projected)))
            }
            let name = names[p.pool] ?? p.pool
            let label = p.limit == nil ? "spent" : "remaining"
            parts.append(
                ConsoleChart.burnDown(
                    id: "pool-chart-\(p.pool)-\(i)", title: "\(name): \(label) (\(p.unit))", period: (p.start, p.end),
                    actual: actual, projected: projected, limit: p.limit ?? 0, now: scope.now, zone: scope.zone,
                    unit: p.unit, format: p.format,
                    axis: { p.unit == "tokens" ? String($0) : ConsoleFormat.shortMoney($0) }, label: label,
                    minimumTop: p.unit == "tokens" ? 10 : 1_000_000))
        }
        if pools.isEmpty { parts.append("<p>This tenant's plan has no free quota or budget.</p>") }
        var table = ConsoleTable(
            id: "forecast-table",
            caption: "Pools and forecast at the recent rate (as of \(ConsoleFormat.timestamp(scope.now)))",
            columns: [
                ("Pool", false), ("Unit", false), ("Period start", false), ("Period end", false), ("Used", true),
                ("Reserved", true), ("Limit", true), ("Remaining", true), ("Rate per day", true),
                ("Runs out at (local)", false),
                ("Projected total", true),
            ])
        for p in pools {
            let cell = { (name: String) -> HTML in "\(p.cells[name]?.text ?? "")" }
            // Instants in the tenant's zone for people; the exact instant, as the API gives it, for machines.
            let instant = { (date: Date, text: String) -> HTML in
                "<time datetime=\"\(ConsoleFormat.timestamp(date))\">\(text)</time>"
            }
            let runsOut: HTML =
                p.runsOut.map { instant($0, ConsoleFormat.minute($0, scope.zone)) }
                ?? (p.limit == nil ? "" : "not this period")
            table.rows.append([
                cell("pool"), cell("unit"), instant(p.start, ConsoleFormat.day(p.start, scope.zone)),
                instant(p.end, ConsoleFormat.day(p.end, scope.zone)), cell("used"), cell("reserved"), cell("limit"),
                cell("remaining"), cell("rate_per_day"), runsOut, cell("projected_total"),
            ])
        }
        parts.append(table.html)
        parts.append(
            """
            <p class="note">The rate is the usage of the last seven days (or since the tenant was created, at \
            least an hour). Solid: recorded; dashed: the forecast at that rate.</p>
            """)
        return HTML.join(parts)
    }

    /// The earliest instant after `now` at which an entry of the price book takes effect, and the price
    /// ids that change then.
    static func nextPriceChange(_ prices: PriceBook, after now: Date) -> (Date, [String])? {
        guard let next = prices.entries.values.flatMap({ $0.map(\.effectiveFrom) }).filter({ $0 > now }).min()
        else { return nil }
        return (next, prices.entries.filter { $0.value.contains { $0.effectiveFrom == next } }.keys.sorted())
    }

    func whatIf(_ scope: Scope) async throws -> HTML {
        let prices = policy.prices
        guard let (at, changing) = Self.nextPriceChange(prices, after: scope.now) else {
            return "<p id=\"no-change\">The price book schedules no change after now.</p>"
        }
        let report = try await Reports(store: store).whatIf(
            from: scope.from, to: scope.to, tenantID: scope.tenant.id, prices: prices, at: at)
        var parts: [HTML] = [
            """
            <dl class="facts"><dt>Takes effect</dt><dd><time id="whatif-at" datetime="\(ConsoleFormat.timestamp(at))">\
            \(ConsoleFormat.timestamp(at))</time></dd><dt>Prices that change</dt><dd>\(changing.joined(separator: ", "))</dd>\
            </dl><p>Every completed record of the range repriced with the entries in force then, with the same \
            rounding as billing.</p>
            """
        ]
        for currency in Set(report.rows.map(\.actualCurrency)).sorted() where !currency.isEmpty {
            let rows = report.rows.filter { $0.actualCurrency == currency && $0.whatIfCurrency == currency }
            guard !rows.isEmpty else { continue }
            parts.append(
                ConsoleChart.groupedBars(
                    id: "whatif-chart-\(currency)", title: "Cost in \(currency): actual and at the next prices",
                    categories: rows.map(\.model),
                    series: [
                        .init(name: "actual", values: rows.map(\.actualCost)),
                        .init(name: "what-if", values: rows.map(\.whatIfCost)),
                    ],
                    unit: currency, format: ConsoleFormat.money, axis: ConsoleFormat.shortMoney))
        }
        var table = ConsoleTable(
            id: "whatif-table", caption: "Actual cost and cost at the next prices, per model",
            columns: [
                ("Model", false), ("Records", true), ("Actual currency", false), ("Actual cost", true),
                ("What-if currency", false), ("What-if cost", true), ("Difference", true), ("Change", true),
                ("Unpriced records", true),
            ])
        var totals: [String: (records: Int64, actual: Int64, whatIf: Int64)] = [:]
        for row in report.rows {
            let same = row.actualCurrency == row.whatIfCurrency
            if same {
                totals[row.actualCurrency, default: (0, 0, 0)].records += row.records
                totals[row.actualCurrency, default: (0, 0, 0)].actual.saturatingAdd(row.actualCost)
                totals[row.actualCurrency, default: (0, 0, 0)].whatIf.saturatingAdd(row.whatIfCost)
            }
            let difference = row.whatIfCost.saturatingSubtracting(row.actualCost)
            table.rows.append([
                "\(row.model)", "\(row.records)", "\(row.actualCurrency)", "\(ConsoleFormat.money(row.actualCost))",
                "\(row.whatIfCurrency)", "\(ConsoleFormat.money(row.whatIfCost))",
                same ? "\(ConsoleFormat.money(difference))" : "",
                same ? "\(Self.percent(difference, of: row.actualCost))" : "",
                "\(row.unpriced)",
            ])
        }
        for (currency, t) in totals.sorted(by: { $0.key < $1.key }) where !currency.isEmpty {
            let difference = t.whatIf.saturatingSubtracting(t.actual)
            table.footer.append([
                "Total", "\(t.records)", "\(currency)", "\(ConsoleFormat.money(t.actual))", "\(currency)",
                "\(ConsoleFormat.money(t.whatIf))", "\(ConsoleFormat.money(difference))",
                "\(Self.percent(difference, of: t.actual))", "",
            ])
        }
        parts.append(table.html)
        return HTML.join(parts)
    }

    /// `part / whole` as a signed percentage with one decimal ("+300.0%"), rounded half away from zero.
    static func percent(_ part: Int64, of whole: Int64) -> String {
        guard whole != 0 else { return "" }
        let tenths = (Int128(part) * 2000 + (part >= 0 ? Int128(whole) : -Int128(whole))) / (Int128(whole) * 2)
        let magnitude = tenths.magnitude
        return (tenths < 0 ? "-" : "+") + "\(magnitude / 10).\(magnitude % 10)%"
    }

    /// The most recent records of the range, newest first. Narrow windows are read first, so a busy
    /// tenant's page does not read its whole month.
    func records(_ scope: Scope) async throws -> HTML {
        let limit = 50
        let reports = Reports(store: store)
        let newer = { (a: BillingRecord, b: BillingRecord) in (a.startedAt, a.id) > (b.startedAt, b.id) }
        let end = min(scope.to, scope.now)
        var kept: [BillingRecord] = []
        for window in [3_600.0, 86_400, 7 * 86_400, .infinity] {
            let start = max(scope.from, end.addingTimeInterval(-window))
            kept = []
            try await reports.each(.init(from: start, to: scope.to, tenantID: scope.tenant.id)) { r in
                kept.append(r)
                if kept.count > 4 * limit {
                    kept.sort(by: newer)
                    kept.removeLast(kept.count - limit)
                }
            }
            if kept.count >= limit || start == scope.from { break }
        }
        kept.sort(by: newer)
        var table = ConsoleTable(
            id: "records-table", caption: "The most recent records of the range (at most \(limit)), newest first",
            columns: [
                ("Started (UTC)", false), ("Record", false), ("Model", false), ("Endpoint", false), ("Status", false),
                ("HTTP", true), ("Prompt", true), ("Cached", true), ("Completion", true), ("Reasoning", true),
                ("Currency", false), ("Cost", true), ("Key", false),
            ])
        for r in kept.prefix(limit) {
            let time = ConsoleFormat.timestamp(r.startedAt)
            table.rows.append([
                "<time datetime=\"\(time)\">\(time)</time>", "\(r.id)", "\(r.model)", "\(r.endpoint)",
                "\(r.status.rawValue)", "\(r.httpStatus)", "\(r.usage.prompt)", "\(r.usage.cachedPrompt)",
                "\(r.usage.completion)", "\(r.usage.reasoning)", "\(r.cost?.currency ?? "")",
                "\(r.cost.map { $0.decimalString } ?? "")", "\(r.keyID)",
            ])
        }
        return table.html
    }
}

extension JSONValue {
    /// A cell's text: a string or number as written; nil for null.
    fileprivate var text: String? {
        switch self {
        case .string(let s): return s
        case .number(let n): return n
        default: return nil
        }
    }
}
