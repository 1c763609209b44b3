import Foundation

/// How billing records are written for export: RFC 4180 CSV or JSON Lines, one record per row, or the
/// FinOps FOCUS cost-and-usage columns (CSV, one row per priced record; ``FocusExport``).
///
/// Times are RFC 3339 in UTC with milliseconds; money is a decimal string with all nine decimals and its
/// currency in its own column, so a spreadsheet or a script can add the rows exactly. The columns are
/// documented in the README and never reordered; new ones are added at the end.
public enum BillingExportFormat: String, Sendable, CaseIterable {
    case csv
    case jsonl
    case focus
    /// Every upstream attempt, one row each: the failed ones and the one that served (CSV).
    case attempts

    public static let columns = [
        "record_id", "request_id", "tenant_id", "tenant_name", "key_id", "started_at", "ended_at", "ttft_ms",
        "endpoint", "model", "upstream_model", "provider", "stream", "status", "http_status", "error",
        "prompt_tokens", "cached_tokens", "cache_write_tokens", "completion_tokens", "reasoning_tokens",
        "usage_source", "local_prompt_tokens", "local_completion_tokens", "local_estimate", "price_entry",
        "currency", "cost", "estimated_tokens", "estimated_cost", "free_units", "grant_units", "free_cost",
        "charged_cost", "budget_currency", "budget_charge", "attempts", "upstream_key_id",
    ]

    public var contentType: String {
        switch self {
        case .csv, .focus, .attempts: return "text/csv; charset=utf-8"
        case .jsonl: return "application/x-ndjson"
        }
    }

    /// The header line (CSV) or nothing (JSON Lines).
    public var header: String {
        switch self {
        case .csv: return Self.columns.joined(separator: ",") + "\r\n"
        case .jsonl: return ""
        case .focus: return FocusExport.columns.joined(separator: ",") + "\r\n"
        case .attempts: return Self.attemptColumns.joined(separator: ",") + "\r\n"
        }
    }

    public func line(_ r: BillingRecord, tenantName: String) -> String {
        if self == .focus { return FocusExport.line(r, tenantName: tenantName) }
        if self == .attempts { return Self.attemptLines(r) }
        let values: [JSONValue] = [
            .string(r.id), .string(r.requestID), .string(r.tenantID), .string(tenantName), .string(r.keyID),
            .string(Self.timestamp(r.startedAt)), .string(Self.timestamp(r.endedAt)),
            r.timeToFirstTokenMs.map(JSONValue.int) ?? .null, .string(r.endpoint), .string(r.model),
            .string(r.upstreamModel), .string(r.provider), .bool(r.stream), .string(r.status.rawValue),
            .int(r.httpStatus), r.error.map(JSONValue.string) ?? .null, .int(r.usage.prompt),
            .int(r.usage.cachedPrompt), .int(r.usage.cacheWrite), .int(r.usage.completion), .int(r.usage.reasoning),
            .string(r.usageSource.rawValue), .int(r.localPromptTokens), .int(r.localCompletionTokens),
            .bool(r.localIsEstimate), r.priceEntry.map(JSONValue.string) ?? .null,
            r.cost.map { .string($0.currency) } ?? .null, r.cost.map { .string($0.decimalString) } ?? .null,
            .int(r.estimatedTokens), r.estimatedCost.map { .string($0.decimalString) } ?? .null,
            .number(String(r.freeUnits)), .number(String(r.grantUnits)),
            r.freeCost.map { .string($0.decimalString) } ?? .null, r.charged.map { .string($0.decimalString) } ?? .null,
            r.budgetCharge.map { .string($0.currency) } ?? .null,
            r.budgetCharge.map { .string($0.decimalString) } ?? .null, .int(r.attempts),
            r.upstreamKeyID.map(JSONValue.string) ?? .null,
        ]
        switch self {
        case .jsonl:
            return JSONWriter.serialize(.object(Array(zip(Self.columns, values)))) + "\n"
        case .csv, .focus, .attempts:
            var line = ""
            for (i, value) in values.enumerated() {
                if i > 0 { line += "," }
                switch value {
                case .string(let s): line += Self.csvField(s)
                case .number(let n): line += n
                case .bool(let b): line += b ? "true" : "false"
                default: break  // null: empty field
                }
            }
            return line + "\r\n"
        }
    }

    static let attemptColumns = [
        "record_id", "request_id", "tenant_id", "attempt", "served", "provider", "upstream_model", "key_id", "status",
        "latency_ms", "error", "prompt_tokens", "completion_tokens",
    ]

    /// A record's attempts: the failed ones in order, then the one the record is (which served, or
    /// failed last); so an operator can match each against the provider's own invoice.
    static func attemptLines(_ r: BillingRecord) -> String {
        var out = ""
        func row(_ n: Int, served: Bool, _ a: UpstreamAttempt) {
            var fields: [String] = [csvField(r.id), csvField(r.requestID), csvField(r.tenantID), String(n)]
            fields.append(served ? "true" : "false")
            fields += [csvField(a.provider), csvField(a.upstreamModel), csvField(a.keyID ?? "")]
            fields.append(a.status.map { String($0) } ?? "")
            fields += [String(a.latencyMs), csvField(a.error)]
            fields.append(a.promptTokens.map { String($0) } ?? "")
            fields.append(a.completionTokens.map { String($0) } ?? "")
            out += fields.joined(separator: ",") + "\r\n"
        }
        for (i, a) in r.failedAttempts.enumerated() { row(i + 1, served: false, a) }
        let last = UpstreamAttempt(
            provider: r.provider, upstreamModel: r.upstreamModel, keyID: r.upstreamKeyID, status: r.httpStatus,
            latencyMs: Int((r.endedAt.timeIntervalSince(r.startedAt) * 1000).rounded()), error: r.error ?? "",
            promptTokens: r.usage.prompt, completionTokens: r.usage.completion)
        row(r.failedAttempts.count + 1, served: r.status == .completed, last)
        return out
    }

    /// RFC 4180: a field with a comma, quote, CR or LF is quoted, and its quotes doubled. A text that a
    /// spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or CR: OWASP's CSV
    /// injection) gets a leading `'`, which spreadsheets show as text. Money and counts never begin so.
    public static func csvField(_ s: String) -> String {
        var s = s
        if let first = s.utf8.first, [0x3D, 0x2B, 0x2D, 0x40, 0x09, 0x0D].contains(first) { s = "'" + s }
        guard s.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-30T01:02:03.456Z`.
    public static func timestamp(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let seconds = ms / 1000
        let c = Calendar.utc.dateComponents(
            [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: Double(seconds)))
        func pad(_ v: Int?, _ width: Int) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):"
            + "\(pad(c.second, 2)).\(pad(Int(ms - seconds * 1000), 3))Z"
    }
}

extension Calendar {
    static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()
}
