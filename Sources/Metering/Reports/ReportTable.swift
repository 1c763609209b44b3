import Foundation

/// A report as one table, rendered as an aligned text table, CSV or JSON, with the same columns in each.
public struct ReportTable: Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case table
        case csv
        case json
    }

    public var columns: [String]
    /// Cells are JSON values: strings (money as nine-decimal strings), numbers, or null.
    public var rows: [[JSONValue]]

    public init(columns: [String], rows: [[JSONValue]] = []) {
        self.columns = columns
        self.rows = rows
    }

    public func render(_ format: Format) -> String {
        switch format {
        case .json: return JSONWriter.serialize(json) + "\n"
        case .csv:
            return ([columns.joined(separator: ",")] + rows.map { $0.map(Self.csvCell).joined(separator: ",") })
                .joined(separator: "\r\n") + "\r\n"
        case .table:
            let text = rows.map { $0.map(Self.text) }
            var widths = columns.map(\.count)
            for row in text { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { i, cell in cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
            }
            return ([line(columns)] + text.map(line)).joined(separator: "\n") + "\n"
        }
    }

    /// `{"rows": [{column: value, ...}, ...]}`.
    public var json: JSONValue {
        .object([("rows", .array(rows.map { .object(Array(zip(columns, $0))) }))])
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return s
        case .array, .object: return JSONWriter.serialize(value)
        }
    }

    static func csvCell(_ value: JSONValue) -> String {
        var s = text(value)
        // A cell a spreadsheet would run as a formula is quoted as text, as the export does.
        if let first = s.utf8.first, [0x3D, 0x2B, 0x2D, 0x40, 0x09, 0x0D].contains(first), case .string = value {
            s = "'" + s
        }
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "'" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension InflationReport {
    /// One row per bucket, tenant and model, then per bucket, tenant and currency a row with model `(all)`
    /// that carries the change and its decomposition.
    public var table: ReportTable {
        var table = ReportTable(columns: [
            "bucket_start", "bucket_end", "tenant_id", "model", "requests", "prompt_tokens", "cached_tokens",
            "completion_tokens", "reasoning_tokens", "tokens_per_request", "cached_share", "currency", "cost",
            "previous_cost", "cost_change", "change_volume", "change_mix", "change_intensity", "change_price",
        ])
        func money(_ nanos: Int64?) -> JSONValue {
            nanos.map { .string(Money(nanos: $0, currency: "").decimalString) } ?? .null
        }
        func int(_ n: Int64) -> JSONValue { .number(String(n)) }
        func fixed(_ n: Int64?, _ decimals: Int) -> JSONValue {
            guard let n else { return .null }
            let scale = Int64(decimals == 2 ? 100 : 10_000)
            let fraction = String(n % scale)
            return .string("\(n / scale)." + String(repeating: "0", count: decimals - fraction.count) + fraction)
        }
        var byBucket: [String: [[JSONValue]]] = [:]
        var order: [String] = []
        for row in rows {
            let id = "\(row.bucket.start.timeIntervalSince1970)|\(row.tenantID)|\(row.currency)"
            if byBucket[id] == nil { order.append(id) }
            byBucket[id, default: []].append([
                .string(BillingExportFormat.timestamp(row.bucket.start)),
                .string(BillingExportFormat.timestamp(row.bucket.end)), .string(row.tenantID), .string(row.model),
                int(row.requests), int(row.promptTokens), int(row.cachedTokens), int(row.completionTokens),
                int(row.reasoningTokens), fixed(row.tokensPerRequestHundredths, 2),
                fixed(row.cachedShareTenThousandths, 4), .string(row.currency), money(row.cost),
                money(row.previousCost),
                money(row.previousCost.map { row.cost.saturatingSubtracting($0) }), .null, .null, .null, .null,
            ])
        }
        for change in changes {
            let id = "\(change.bucket.start.timeIntervalSince1970)|\(change.tenantID)|\(change.currency)"
            if byBucket[id] == nil { order.append(id) }
            byBucket[id, default: []].append([
                .string(BillingExportFormat.timestamp(change.bucket.start)),
                .string(BillingExportFormat.timestamp(change.bucket.end)), .string(change.tenantID), .string("(all)"),
                int(change.requests), .null, .null, .null, .null, .null, .null, .string(change.currency),
                money(change.cost), money(change.previousCost),
                money(change.cost.saturatingSubtracting(change.previousCost)),
                money(change.volume), money(change.mix), money(change.intensity), money(change.price),
            ])
        }
        table.rows = order.flatMap { byBucket[$0] ?? [] }
        return table
    }
}

extension WhatIfReport {
    public var table: ReportTable {
        ReportTable(
            columns: [
                "tenant_id", "model", "records", "actual_currency", "actual_cost", "whatif_currency", "whatif_cost",
                "unpriced_records",
            ],
            rows: rows.map {
                [
                    .string($0.tenantID), .string($0.model), .number(String($0.records)), .string($0.actualCurrency),
                    .string(Money(nanos: $0.actualCost, currency: "").decimalString), .string($0.whatIfCurrency),
                    .string(Money(nanos: $0.whatIfCost, currency: "").decimalString), .number(String($0.unpriced)),
                ]
            })
    }
}
