import Foundation
import Metering

/// The spend and tokens pages: both read the inflation report by day, the numbers the admin API's
/// `/admin/v1/reports/inflation?by=day` gives for the same tenant and range.
extension Console {
    func dailyInflation(_ scope: Scope) async throws -> InflationReport {
        try await Reports(store: store).inflation(
            from: scope.from, to: scope.to, tenantID: scope.tenant.id, by: .day, prices: policy.prices)
    }

    /// The days of the range and where each bucket start falls among them.
    func dayAxis(_ scope: Scope) -> (labels: [String], index: [Date: Int]) {
        let days = ConsoleFormat.days(from: scope.from, to: scope.to, zone: scope.zone)
        return (
            days.map { ConsoleFormat.day($0.start, scope.zone) },
            Dictionary(days.enumerated().map { ($1.start, $0) }, uniquingKeysWith: { a, _ in a })
        )
    }

    static func currencyLabel(_ currency: String) -> String { currency.isEmpty ? "(unpriced)" : currency }

    func spend(_ scope: Scope) async throws -> HTML {
        let report = try await dailyInflation(scope)
        let (labels, index) = dayAxis(scope)
        var parts: [HTML] = []
        for currency in Set(report.rows.map(\.currency)).sorted() where !currency.isEmpty {
            let rows = report.rows.filter { $0.currency == currency }
            let series = Set(rows.map(\.model)).sorted().map { model -> ConsoleChart.Series in
                var values = [Int64?](repeating: nil, count: labels.count)
                for row in rows where row.model == model {
                    if let i = index[row.bucket.start] { values[i] = (values[i] ?? 0) + row.cost }
                }
                return .init(name: model, values: values)
            }
            parts.append(
                ConsoleChart.stackedBars(
                    id: "spend-chart-\(currency)", title: "Spend per day in \(currency), by model", categories: labels,
                    series: series, unit: currency, format: ConsoleFormat.money, axis: ConsoleFormat.shortMoney))
        }
        var table = ConsoleTable(
            id: "spend-table", caption: "Spend per day and model",
            columns: [("Day", false), ("Model", false), ("Currency", false), ("Requests", true), ("Cost", true)])
        var totals: [String: (requests: Int64, cost: Int64)] = [:]
        for row in report.rows {
            table.rows.append([
                ConsoleFormat.dayCell(row.bucket), "\(row.model)", "\(Self.currencyLabel(row.currency))",
                "\(row.requests)", "\(ConsoleFormat.money(row.cost))",
            ])
            totals[row.currency, default: (0, 0)].requests += row.requests
            totals[row.currency, default: (0, 0)].cost += row.cost
        }
        for (currency, total) in totals.sorted(by: { $0.key < $1.key }) {
            table.footer.append([
                "Total", "", "\(Self.currencyLabel(currency))", "\(total.requests)",
                "\(ConsoleFormat.money(total.cost))",
            ])
        }
        if parts.isEmpty { parts.append("<p>No priced requests in this range.</p>") }
        return HTML.join(parts + [table.html])
    }

    func tokens(_ scope: Scope) async throws -> HTML {
        let report = try await dailyInflation(scope)
        let (labels, index) = dayAxis(scope)
        // One line per model: its tokens per request each day, over all of its currencies.
        var sums: [String: [(tokens: Int64, requests: Int64)]] = [:]
        for row in report.rows {
            guard let i = index[row.bucket.start] else { continue }
            var days = sums[row.model] ?? Array(repeating: (0, 0), count: labels.count)
            days[i].tokens.saturatingAdd(row.promptTokens.saturatingAdding(row.completionTokens))
            days[i].requests += row.requests
            sums[row.model] = days
        }
        let series = sums.keys.sorted().map { model in
            ConsoleChart.Series(
                name: model,
                values: sums[model]!.map { day in
                    day.requests > 0 ? ConsoleFormat.ratio(day.tokens, day.requests, scale: 100) : nil
                })
        }
        let hundredths = { (n: Int64) in ConsoleFormat.fixed(n, decimals: 2) }
        var parts: [HTML] = [
            ConsoleChart.lines(
                id: "tokens-chart", title: "Prompt and completion tokens per request, per day", categories: labels,
                series: series, unit: "tokens per request", format: hundredths,
                axis: { String(($0 + 50) / 100) }, minimumTop: 1_000)
        ]
        var table = ConsoleTable(
            id: "tokens-table", caption: "Tokens per day and model",
            columns: [
                ("Day", false), ("Model", false), ("Currency", false), ("Requests", true), ("Prompt", true),
                ("Cached", true), ("Completion", true), ("Reasoning", true), ("Tokens per request", true),
                ("Cached share", true),
            ])
        for row in report.rows {
            table.rows.append([
                ConsoleFormat.dayCell(row.bucket), "\(row.model)", "\(Self.currencyLabel(row.currency))",
                "\(row.requests)", "\(row.promptTokens)", "\(row.cachedTokens)", "\(row.completionTokens)",
                "\(row.reasoningTokens)", "\(ConsoleFormat.fixed(row.tokensPerRequestHundredths, decimals: 2))",
                "\(ConsoleFormat.fixed(row.cachedShareTenThousandths, decimals: 4))",
            ])
        }
        parts.append(table.html)
        parts.append(
            """
            <h2 id="decomposition">Why the cost changed</h2><p>Each day's cost against the day before, split \
            into volume (more or fewer requests), mix (other models), intensity (tokens per request) and price \
            (entries that changed); the four parts add up to the change exactly.</p>
            """)
        for currency in Set(report.changes.map(\.currency)).sorted() {
            guard let last = report.changes.last(where: { $0.currency == currency }) else { continue }
            let day = ConsoleFormat.day(last.bucket.start, scope.zone)
            parts.append(
                ConsoleChart.waterfall(
                    id: "change-chart-\(Self.currencyLabel(currency))",
                    title: "Cost change on \(day) in \(Self.currencyLabel(currency))",
                    start: ("previous day", last.previousCost),
                    parts: [
                        ("volume", last.volume), ("mix", last.mix), ("intensity", last.intensity),
                        ("price", last.price),
                    ], end: (day, last.cost), unit: Self.currencyLabel(currency), format: ConsoleFormat.money,
                    axis: ConsoleFormat.shortMoney))
        }
        var changes = ConsoleTable(
            id: "changes-table", caption: "Cost change against the previous day",
            columns: [
                ("Day", false), ("Currency", false), ("Requests before", true), ("Requests", true),
                ("Previous cost", true), ("Cost", true), ("Change", true), ("Volume", true), ("Mix", true),
                ("Intensity", true), ("Price", true),
            ])
        for c in report.changes {
            changes.rows.append([
                ConsoleFormat.dayCell(c.bucket), "\(Self.currencyLabel(c.currency))", "\(c.previousRequests)",
                "\(c.requests)", "\(ConsoleFormat.money(c.previousCost))", "\(ConsoleFormat.money(c.cost))",
                "\(ConsoleFormat.money(c.cost.saturatingSubtracting(c.previousCost)))",
                "\(ConsoleFormat.money(c.volume))",
                "\(ConsoleFormat.money(c.mix))", "\(ConsoleFormat.money(c.intensity))",
                "\(ConsoleFormat.money(c.price))",
            ])
        }
        parts.append(changes.html)
        return HTML.join(parts)
    }
}
