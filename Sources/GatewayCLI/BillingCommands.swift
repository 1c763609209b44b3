import ArgumentParser
import Foundation
import Gateway
import Metering

/// `gateway export`: billing records as CSV or JSON Lines, streamed to a file or stdout.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export billing records (RFC 4180 CSV or JSON Lines), streamed.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Start, inclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).")
    var from: String

    @Option(help: "End, exclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).")
    var to: String

    @Option(help: "Only this tenant (id or name).")
    var tenant: String?

    @Option(help: "csv, jsonl or focus (FinOps FOCUS columns, CSV).")
    var format: String = "csv"

    @Option(help: "Write here instead of stdout.")
    var output: String?

    @Flag(help: "One row per upstream attempt (retries and fallbacks) instead of per record.")
    var attempts = false

    func run() async throws {
        guard let from = CalendarPeriod.instant(from) else { throw CLI.fail("--from: expected RFC 3339 or YYYY-MM-DD") }
        guard let to = CalendarPeriod.instant(to) else { throw CLI.fail("--to: expected RFC 3339 or YYYY-MM-DD") }
        guard let chosen = BillingExportFormat(rawValue: format) else {
            throw CLI.fail("--format: csv, jsonl, focus or attempts")
        }
        let format = attempts ? .attempts : chosen
        let store = try await CLI.openStore(common)
        var tenantID: String?
        if let tenant { tenantID = try await CLI.run { try await store.tenant(tenant).id } }
        let handle: FileHandle
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: nil) else {
                throw CLI.fail("cannot write \(output)")
            }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        } else {
            handle = FileHandle.standardOutput
        }
        let rows = try await BillingExporter(store: store).export(
            .init(from: from, to: to, tenantID: tenantID), format: format
        ) { text in try handle.write(contentsOf: Data(text.utf8)) }
        if output != nil {
            try handle.close()
            FileHandle.standardError.write(Data("exported \(rows) records to \(output!)\n".utf8))
        }
    }
}

/// `gateway usage`: one tenant's totals over a calendar period in its time zone.
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "A tenant's totals for a period (2026-11 or 2026-11-30, in the tenant's time zone).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Tenant id or name.")
    var tenant: String

    @Option(help: "A month (YYYY-MM) or a day (YYYY-MM-DD), in the tenant's time zone.")
    var period: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let store = try await CLI.openStore(common)
        let tenant = try await CLI.run { try await store.tenant(self.tenant) }
        guard let zone = TimeZone(identifier: tenant.timezone),
            let period = CalendarPeriod.parse(self.period, timeZone: zone)
        else { throw CLI.fail("--period: expected YYYY-MM or YYYY-MM-DD") }
        let totals = try await store.usageTotals(.init(from: period.start, to: period.end, tenantID: tenant.id))
        let from = BillingExportFormat.timestamp(period.start)
        let to = BillingExportFormat.timestamp(period.end)
        if json {
            let value: JSONValue = .object([
                ("tenant_id", .string(tenant.id)), ("tenant_name", .string(tenant.name)),
                ("timezone", .string(tenant.timezone)), ("period", .string(self.period)), ("from", .string(from)),
                ("to", .string(to)),
                (
                    "totals",
                    .array(
                        totals.map { t in
                            .object([
                                ("currency", .string(t.currency)), ("requests", .int(t.requests)),
                                ("prompt_tokens", .int(t.promptTokens)), ("cached_tokens", .int(t.cachedTokens)),
                                ("cache_write_tokens", .int(t.cacheWriteTokens)),
                                ("completion_tokens", .int(t.completionTokens)),
                                ("reasoning_tokens", .int(t.reasoningTokens)),
                                ("cost", .string(Money(nanos: t.costNanos, currency: t.currency).decimalString)),
                            ])
                        })
                ),
            ])
            print(JSONWriter.serialize(value))
            return
        }
        print("tenant \(tenant.name) (\(tenant.id)), \(self.period) in \(tenant.timezone): [\(from), \(to))")
        if totals.isEmpty { print("no records") }
        for t in totals {
            let cost = Money(nanos: t.costNanos, currency: t.currency).decimalString
            print(
                "\(t.currency.isEmpty ? "unpriced" : t.currency): \(t.requests) requests, "
                    + "\(t.promptTokens) prompt tokens (\(t.cachedTokens) cached, \(t.cacheWriteTokens) cache writes), "
                    + "\(t.completionTokens) completion tokens (\(t.reasoningTokens) reasoning), cost \(cost)")
        }
    }
}
