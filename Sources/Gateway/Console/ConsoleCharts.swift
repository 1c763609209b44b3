import Foundation

/// Server-drawn SVG charts: no script, nothing fetched. Each mark carries its value in a `<title>` (read
/// on hover and by screen readers) and `data-value`; the tables beside the charts hold the same numbers.
/// Colours come from the stylesheet's `s0`…`s7` (fills) and `l0`…`l7` (strokes).
enum ConsoleChart {
    struct Series {
        var name: String
        /// One value per category; nil where there is none (a gap in a line).
        var values: [Int64?]
    }

    // Narrow enough that 13-unit text stays legible when a phone scales the chart down.
    static let width = 560.0
    static let height = 260.0
    static let left = 92.0
    static let right = 16.0
    static let top = 14.0
    static let bottom = 46.0
    static var plotWidth: Double { width - left - right }
    static var plotHeight: Double { height - top - bottom }
    static var baseline: Double { height - bottom }

    /// The figure around a chart: an accessible name and description, and a legend in HTML.
    static func figure(id: String, title: String, description: String, legend: [String], marks: HTML) -> HTML {
        let keys = legend.enumerated().map { i, name -> HTML in
            """
            <li><svg class="sw" viewBox="0 0 10 10" aria-hidden="true"><rect class="s\(i % 8)" width="10" \
            height="10"/></svg> \(name)</li>
            """
        }
        let legendList: HTML = legend.isEmpty ? "" : "<ul class=\"legend\">\(keys)</ul>"
        return """
            <figure id="\(id)"><figcaption>\(title)\(legendList)</figcaption>\
            <svg viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-labelledby="\(id)-title \(id)-desc">\
            <title id="\(id)-title">\(title)</title><desc id="\(id)-desc">\(description)</desc>\(marks)</svg></figure>
            """
    }

    /// Grid lines and labels at the bottom, middle and top of a value axis from `low` to `high`.
    static func valueAxis(low: Double, high: Double, label: (Double) -> String) -> HTML {
        var marks: [HTML] = []
        for step in 0...2 {
            let value = low + (high - low) * Double(step) / 2
            let y = baseline - plotHeight * Double(step) / 2
            marks.append(
                """
                <line class="grid" x1="\(left)" x2="\(width - right)" y1="\(y)" y2="\(y)"/>\
                <text class="axis" x="\(left - 6)" y="\(y + 4)" text-anchor="end">\(label(value))</text>
                """)
        }
        return HTML.join(marks)
    }

    /// The top of a value axis: a round step (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) at
    /// least `value` and `minimum`, so the grid's labels are short and the tallest mark nearly fills it.
    static func niceCeiling(_ value: Int64, minimum: Int64 = 1) -> Int64 {
        let v = max(value, minimum, 1)
        var power: Int64 = 1
        while power <= v / 10 { power *= 10 }
        for tenths: Int64 in [10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100] {
            let (scaled, overflow) = power.multipliedReportingOverflow(by: tenths)
            if !overflow && scaled / 10 >= v { return scaled / 10 }
        }
        return v
    }

    /// Category labels under the plot, thinned so they never overlap. Days are shortened to `MM-DD` (the
    /// marks' titles and the tables keep the whole date).
    static func categoryAxis(_ labels: [String], center: (Int) -> Double) -> HTML {
        let short = labels.map { $0.count == 10 && $0.dropFirst(4).first == "-" ? String($0.dropFirst(5)) : $0 }
        let widest = Double(short.map(\.count).max() ?? 1) * 8 + 12
        let fit = max(1, Int(plotWidth / widest))
        let every = max(1, Int((Double(labels.count) / Double(fit)).rounded(.up)))
        return HTML.join(
            short.enumerated().filter { $0.offset % every == 0 }.map { i, label in
                "<text class=\"axis\" x=\"\(center(i))\" y=\"\(baseline + 18)\" text-anchor=\"middle\">\(label)</text>"
            })
    }

    /// Bars per category, stacked by series (spend by day and model).
    static func stackedBars(
        id: String, title: String, categories: [String], series: [Series], unit: String, format: (Int64) -> String,
        axis: (Int64) -> String, minimumTop: Int64 = 1
    ) -> HTML {
        let totals = categories.indices.map { i in series.reduce(Int64(0)) { $0 + max(0, $1.values[i] ?? 0) } }
        let top = Double(niceCeiling(totals.max() ?? 0, minimum: minimumTop))
        let slot = plotWidth / Double(max(1, categories.count))
        let barWidth = max(1, slot * 0.7)
        var marks: [HTML] = [valueAxis(low: 0, high: top) { axis(Int64($0.rounded())) }]
        for (i, category) in categories.enumerated() {
            var y = baseline
            for (k, s) in series.enumerated() {
                guard let value = s.values[i], value > 0 else { continue }
                let h = max(0.5, Double(value) / top * plotHeight)
                y -= h
                marks.append(
                    """
                    <rect class="s\(k % 8)" x="\(left + slot * Double(i) + (slot - barWidth) / 2)" y="\(y)" \
                    width="\(barWidth)" height="\(h)" data-category="\(category)" data-series="\(s.name)" \
                    data-value="\(format(value))"><title>\(category) · \(s.name): \(format(value)) \(unit)</title></rect>
                    """)
            }
        }
        marks.append(categoryAxis(categories) { left + slot * (Double($0) + 0.5) })
        return figure(
            id: id, title: title, description: "Stacked bars per day, one colour per model; heights in \(unit).",
            legend: series.map(\.name), marks: HTML.join(marks))
    }

    /// Side-by-side bars per category (actual against what-if cost).
    static func groupedBars(
        id: String, title: String, categories: [String], series: [Series], unit: String, format: (Int64) -> String,
        axis: (Int64) -> String, minimumTop: Int64 = 1
    ) -> HTML {
        let top = Double(niceCeiling(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0, minimum: minimumTop))
        let slot = plotWidth / Double(max(1, categories.count))
        let barWidth = max(1, slot * 0.8 / Double(max(1, series.count)))
        var marks: [HTML] = [valueAxis(low: 0, high: top) { axis(Int64($0.rounded())) }]
        for (i, category) in categories.enumerated() {
            for (k, s) in series.enumerated() {
                guard let value = s.values[i] else { continue }
                let h = max(0.5, Double(max(0, value)) / top * plotHeight)
                let x = left + slot * Double(i) + slot * 0.1 + barWidth * Double(k)
                marks.append(
                    """
                    <rect class="s\(k % 8)" x="\(x)" y="\(baseline - h)" width="\(barWidth)" height="\(h)" \
                    data-category="\(category)" data-series="\(s.name)" data-value="\(format(value))">\
                    <title>\(category) · \(s.name): \(format(value)) \(unit)</title></rect>
                    """)
            }
        }
        marks.append(categoryAxis(categories) { left + slot * (Double($0) + 0.5) })
        return figure(
            id: id, title: title, description: "Bars per model: \(series.map(\.name).joined(separator: " and ")).",
            legend: series.map(\.name), marks: HTML.join(marks))
    }

    /// One line per series over the categories, with a dot per value (tokens per request by day).
    static func lines(
        id: String, title: String, categories: [String], series: [Series], unit: String, format: (Int64) -> String,
        axis: (Int64) -> String, minimumTop: Int64 = 1
    ) -> HTML {
        let top = Double(niceCeiling(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0, minimum: minimumTop))
        let slot = plotWidth / Double(max(1, categories.count))
        func point(_ i: Int, _ v: Int64) -> (Double, Double) {
            (left + slot * (Double(i) + 0.5), baseline - Double(v) / top * plotHeight)
        }
        var marks: [HTML] = [valueAxis(low: 0, high: top) { axis(Int64($0.rounded())) }]
        for (k, s) in series.enumerated() {
            let points = s.values.enumerated().compactMap { i, v in v.map { point(i, $0) } }
            let path = points.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
            marks.append("<polyline class=\"line l\(k % 8)\" points=\"\(path)\"/>")
            for (i, value) in s.values.enumerated() {
                guard let value else { continue }
                let (x, y) = point(i, value)
                marks.append(
                    """
                    <circle class="s\(k % 8)" cx="\(x)" cy="\(y)" r="3.5" data-category="\(categories[i])" \
                    data-series="\(s.name)" data-value="\(format(value))"><title>\(categories[i]) · \(s.name): \
                    \(format(value)) \(unit)</title></circle>
                    """)
            }
        }
        marks.append(categoryAxis(categories) { left + slot * (Double($0) + 0.5) })
        return figure(
            id: id, title: title, description: "One line per model; the height is \(unit).",
            legend: series.map(\.name), marks: HTML.join(marks))
    }

    /// A waterfall from one total to the next through signed parts (the cost change's decomposition).
    static func waterfall(
        id: String, title: String, start: (String, Int64), parts: [(String, Int64)], end: (String, Int64),
        unit: String, format: (Int64) -> String, axis: (Int64) -> String
    ) -> HTML {
        var running = start.1
        var levels = [0, start.1, end.1]
        for part in parts {
            running += part.1
            levels.append(running)
        }
        let low = Double(levels.min() ?? 0)
        let high = Double(max((levels.max() ?? 1), Int64(low) + 1))
        func y(_ v: Int64) -> Double { baseline - (Double(v) - low) / (high - low) * plotHeight }
        let steps = 2 + parts.count
        let slot = plotWidth / Double(steps)
        let barWidth = slot * 0.6
        var marks: [HTML] = [valueAxis(low: low, high: high) { axis(Int64($0.rounded())) }]
        func bar(_ i: Int, _ label: String, from a: Int64, to b: Int64, value: Int64, kind: String) {
            let top = min(y(a), y(b))
            let h = max(0.5, abs(y(a) - y(b)))
            marks.append(
                """
                <rect class="\(kind)" x="\(left + slot * Double(i) + (slot - barWidth) / 2)" y="\(top)" \
                width="\(barWidth)" height="\(h)" data-category="\(label)" data-value="\(format(value))">\
                <title>\(label): \(format(value)) \(unit)</title></rect>
                """)
        }
        bar(0, start.0, from: 0, to: start.1, value: start.1, kind: "total")
        running = start.1
        for (i, part) in parts.enumerated() {
            bar(i + 1, part.0, from: running, to: running + part.1, value: part.1, kind: part.1 < 0 ? "down" : "up")
            running += part.1
        }
        bar(steps - 1, end.0, from: 0, to: end.1, value: end.1, kind: "total")
        let labels = [start.0] + parts.map(\.0) + [end.0]
        marks.append(categoryAxis(labels) { left + slot * (Double($0) + 0.5) })
        return figure(
            id: id, title: title,
            description: "The previous cost, each part of the change (rising or falling), and the cost in \(unit).",
            legend: [], marks: HTML.join(marks))
    }

    /// What is left of a pool over its period: the record so far, then the forecast at the recent rate.
    /// Points are (instant, remaining); `limit` is the top of the axis.
    static func burnDown(
        id: String, title: String, period: (Date, Date), actual: [(Date, Int64)], projected: [(Date, Int64)],
        limit: Int64, now: Date, zone: TimeZone, unit: String, format: (Int64) -> String, axis: (Int64) -> String,
        label: String, minimumTop: Int64 = 1
    ) -> HTML {
        let span = max(1, period.1.timeIntervalSince(period.0))
        // A pool's axis ends at its limit; spend (no limit) at a round amount above the projection.
        let highest = max(limit, actual.map(\.1).max() ?? 0, projected.map(\.1).max() ?? 0)
        let high = Double(limit > 0 && highest == limit ? limit : niceCeiling(highest, minimum: minimumTop))
        func x(_ d: Date) -> Double { left + max(0, min(1, d.timeIntervalSince(period.0) / span)) * plotWidth }
        func y(_ v: Int64) -> Double { baseline - Double(max(0, v)) / high * plotHeight }
        func path(_ points: [(Date, Int64)]) -> String {
            points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
        }
        var marks: [HTML] = [valueAxis(low: 0, high: high) { axis(Int64($0.rounded())) }]
        marks.append(
            """
            <line class="now" x1="\(x(now))" x2="\(x(now))" y1="\(top)" y2="\(baseline)"/>\
            <polyline class="line l0" points="\(path(actual))"/>\
            <polyline class="line l1 dashed" points="\(path(projected))"/>
            """)
        for (i, (date, value)) in (actual + projected.dropFirst()).enumerated() {
            let kind = i < actual.count ? "s0" : "s1"
            let what = i < actual.count ? "recorded" : "forecast"
            marks.append(
                """
                <circle class="\(kind)" cx="\(x(date))" cy="\(y(value))" r="3" data-value="\(format(value))">\
                <title>\(ConsoleFormat.timestamp(date)) \(what): \(label) \(format(value)) \(unit)</title></circle>
                """)
        }
        let (first, last) = (ConsoleFormat.day(period.0, zone), ConsoleFormat.day(period.1, zone))
        marks.append(
            """
            <text class="axis" x="\(left)" y="\(baseline + 16)">\(first)</text>\
            <text class="axis" x="\(width - right)" y="\(baseline + 16)" text-anchor="end">\(last)</text>\
            <text class="axis" x="\(x(now))" y="\(baseline + 32)" text-anchor="middle">now</text>
            """)
        return figure(
            id: id, title: title,
            description: "\(label.capitalized) in \(unit) from the period's start to now, then at the recent rate.",
            legend: ["recorded", "forecast at the recent rate"], marks: HTML.join(marks))
    }
}
