import ArgumentParser
import Foundation
import Gateway
import Metering

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Token inflation, what-if repricing and forecasts (docs/reports.md).",
        subcommands: [Inflation.self, WhatIf.self, Forecast.self])

    static func range(_ from: String, _ to: String) throws -> (Date, Date) {
        guard let start = CalendarPeriod.instant(from) else {
            throw CLI.fail("--from: expected RFC 3339 or YYYY-MM-DD")
        }
        guard let end = CalendarPeriod.instant(to) else { throw CLI.fail("--to: expected RFC 3339 or YYYY-MM-DD") }
        guard start < end else { throw CLI.fail("--from must be before --to") }
        return (start, end)
    }

    static func format(_ text: String) throws -> ReportTable.Format {
        guard let format = ReportTable.Format(rawValue: text) else { throw CLI.fail("--format: table, csv or json") }
        return format
    }

    struct Inflation: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Requests, tokens per request, cached share and cost per bucket, tenant and model, with the "
                + "cost change split into volume, mix, intensity and price.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Start, inclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).") var from: String
        @Option(help: "End, exclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).") var to: String
        @Option(help: "Only this tenant (id or name).") var tenant: String?
        @Option(help: "day, week or month, in each tenant's time zone.") var by: String = "day"
        @Option(help: "table, csv or json.") var format: String = "table"

        func run() async throws {
            let (from, to) = try ReportCommand.range(self.from, self.to)
            let format = try ReportCommand.format(format)
            guard let kind = CalendarPeriod.Kind(rawValue: by) else { throw CLI.fail("--by: day, week or month") }
            let policies = try CLI.loadPolicies(common)
            let store = try await CLI.openStore(common)
            var tenantID: String?
            if let tenant { tenantID = try await CLI.run { try await store.tenant(tenant).id } }
            let report = try await Reports(store: store).inflation(
                from: from, to: to, tenantID: tenantID, by: kind, prices: policies.prices)
            print(report.table.render(format), terminator: "")
        }
    }

    struct WhatIf: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "whatif",
            abstract: "Every completed record of the period repriced under another price book, or this one at a "
                + "later instant.")
        @OptionGroup var common: CommonOptions
        @Option(help: "A price book (prices.yaml format); default: the project's own.") var prices: String?
        @Option(help: "Price every record at this instant instead of at its own start.") var at: String?
        @Option(help: "Start, inclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).") var from: String
        @Option(help: "End, exclusive: an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight).") var to: String
        @Option(help: "Only this tenant (id or name).") var tenant: String?
        @Option(help: "table, csv or json.") var format: String = "table"

        func run() async throws {
            let (from, to) = try ReportCommand.range(self.from, self.to)
            let format = try ReportCommand.format(format)
            var instant: Date?
            if let at {
                guard let parsed = CalendarPeriod.instant(at) else {
                    throw CLI.fail("--at: expected RFC 3339 or YYYY-MM-DD")
                }
                instant = parsed
            }
            guard prices != nil || instant != nil else { throw CLI.fail("give --prices, --at, or both") }
            let book: PriceBook
            if let prices {
                do { book = try PriceBook.load(path: prices) } catch { throw CLI.fail("--prices: \(error)") }
            } else {
                book = try CLI.loadPolicies(common).prices
            }
            let store = try await CLI.openStore(common)
            var tenantID: String?
            if let tenant { tenantID = try await CLI.run { try await store.tenant(tenant).id } }
            let report = try await Reports(store: store).whatIf(
                from: from, to: to, tenantID: tenantID, prices: book, at: instant)
            print(report.table.render(format), terminator: "")
        }
    }

    struct Forecast: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "When the free quota and the budget of the current period run out at the recent rate, and "
                + "what the period will cost.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Tenant id or name.") var tenant: String
        @Option(help: "table, csv or json.") var format: String = "table"

        func run() async throws {
            let format = try ReportCommand.format(format)
            let policies = try CLI.loadPolicies(common)
            let store = try await CLI.openStore(common)
            let t = try await CLI.run { try await store.tenant(tenant) }
            let table = try await Reports(store: store).forecast(
                tenant: t, policy: QuotaReport.policyService(policies: policies, store: store))
            print(table.render(format), terminator: "")
        }
    }
}
