import Foundation
import Metering

/// Markup the console writes. Text interpolated into it is escaped by ``HTML/escape(_:)``; only literals
/// and other `HTML` values go in unescaped, so a tenant or model name can never become markup.
struct HTML: Sendable, ExpressibleByStringInterpolation {
    var markup: String

    init(stringLiteral value: String) { markup = value }
    init(stringInterpolation: StringInterpolation) { markup = stringInterpolation.markup }

    struct StringInterpolation: StringInterpolationProtocol {
        var markup = ""

        init(literalCapacity: Int, interpolationCount: Int) { markup.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ literal: String) { markup += literal }
        mutating func appendInterpolation(_ text: String) { markup += HTML.escape(text) }
        mutating func appendInterpolation(_ html: HTML) { markup += html.markup }
        mutating func appendInterpolation(_ parts: [HTML]) { for part in parts { markup += part.markup } }
        mutating func appendInterpolation(_ number: Int) { markup += String(number) }
        mutating func appendInterpolation(_ number: Int64) { markup += String(number) }
        /// A coordinate in an SVG: one decimal is finer than a pixel at the charts' sizes.
        mutating func appendInterpolation(_ number: Double) { markup += String(format: "%.1f", number) }
    }

    /// The one escaping function: text for element content and for quoted attribute values alike.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func join(_ parts: [HTML], separator: HTML = "") -> HTML {
        HTML(stringLiteral: parts.map(\.markup).joined(separator: separator.markup))
    }
}

/// How the console writes numbers, instants and days: money as the ledger's decimal strings, instants as
/// the export's timestamps, days in the tenant's own time zone.
enum ConsoleFormat {
    static func money(_ nanos: Int64) -> String { Money(nanos: nanos, currency: "").decimalString }

    /// Short money for axis labels ("0.0012"); tables always carry the full nine decimals.
    static func shortMoney(_ nanos: Int64) -> String { Money(nanos: nanos, currency: "").shortDecimalString }

    /// `n` in units of 1/10^decimals, as the inflation report writes ratios ("123.45", "0.2500").
    static func fixed(_ n: Int64?, decimals: Int) -> String {
        guard let n else { return "" }
        let scale: Int64 = decimals == 2 ? 100 : 10_000
        let fraction = String(n % scale)
        return "\(n / scale)." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }

    /// a / b in units of 1/scale, rounded half up, as the inflation report computes its ratios.
    static func ratio(_ a: Int64, _ b: Int64, scale: Int64) -> Int64 {
        Int64(clamping: (Int128(a) * Int128(scale) * 2 + Int128(b)) / (Int128(b) * 2))
    }

    static func timestamp(_ date: Date) -> String { BillingExportFormat.timestamp(date) }

    /// `YYYY-MM-DD` of `date` in `zone`.
    static func day(_ date: Date, _ zone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }

    /// `YYYY-MM-DD HH:MM` of `date` in `zone`, for the forecast's instants.
    static func minute(_ date: Date, _ zone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.hour, .minute], from: date)
        return day(date, zone) + String(format: " %02d:%02d", c.hour ?? 0, c.minute ?? 0)
    }

    /// A day cell: the day as people read it, the bucket's exact start for machines.
    static func dayCell(_ period: CalendarPeriod) -> HTML {
        "<time datetime=\"\(timestamp(period.start))\">\(day(period.start, period.timeZone))</time>"
    }

    /// The days of the tenant's zone that meet [from, to), at most `limit`.
    static func days(from: Date, to: Date, zone: TimeZone, limit: Int = 400) -> [CalendarPeriod] {
        var out: [CalendarPeriod] = []
        var period = CalendarPeriod.containing(from, kind: .day, timeZone: zone)
        while period.start < to && out.count < limit {
            out.append(period)
            period = CalendarPeriod.containing(period.end, kind: .day, timeZone: zone)
        }
        return out
    }
}

/// A table of text cells; `numeric` columns are right-aligned. Every number a chart draws is in one.
struct ConsoleTable {
    var id: String
    var caption: String
    var columns: [(name: String, numeric: Bool)]
    var rows: [[HTML]] = []
    var footer: [[HTML]] = []

    init(id: String, caption: String, columns: [(String, Bool)]) {
        self.id = id
        self.caption = caption
        self.columns = columns.map { (name: $0.0, numeric: $0.1) }
    }

    var html: HTML {
        func row(_ cells: [HTML], tag: String) -> HTML {
            let parts = cells.enumerated().map { i, cell -> HTML in
                let numeric = i < columns.count && columns[i].numeric
                return tag == "td"
                    ? (numeric ? "<td class=\"n\">\(cell)</td>" : "<td>\(cell)</td>")
                    : (numeric ? "<th class=\"n\">\(cell)</th>" : "<th>\(cell)</th>")
            }
            return "<tr>\(parts)</tr>"
        }
        let head = columns.map { c -> HTML in
            c.numeric ? "<th scope=\"col\" class=\"n\">\(c.name)</th>" : "<th scope=\"col\">\(c.name)</th>"
        }
        let body =
            rows.isEmpty
            ? ["<tr><td colspan=\"\(columns.count)\">No records in this range.</td></tr>"]
            : rows.map { row($0, tag: "td") }
        let foot: HTML = footer.isEmpty ? "" : "<tfoot>\(footer.map { row($0, tag: "td") })</tfoot>"
        return """
            <div class="scroll" role="region" aria-labelledby="\(id)-caption" tabindex="0"><table id="\(id)">\
            <caption id="\(id)-caption">\(caption)</caption><thead><tr>\(head)</tr></thead>\
            <tbody>\(body)</tbody>\(foot)</table></div>
            """
    }
}
