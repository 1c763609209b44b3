import ArgumentParser
import Foundation
import Gateway
import Logging
import Metering
import NIOPosix

/// `gateway budgets set|clear`: a tenant's own budget, replacing its plan's.
struct BudgetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budgets", abstract: "Set or clear a tenant's budget.", subcommands: [Set.self, Clear.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a tenant's budget (replaces the plan's).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String
        @Option(help: "Limit per period, a decimal amount such as 25.00.") var limit: String
        @Option(help: "day, week or month (in the tenant's time zone).") var period: String = "month"
        @Option(help: "ISO 4217 currency (default: the tenant's currency, else USD).") var currency: String?
        @Flag(help: "Admit past the limit and alert, instead of rejecting.") var soft = false

        func run() async throws {
            guard let kind = CalendarPeriod.Kind(rawValue: period) else {
                throw CLI.fail("--period: day, week or month")
            }
            let store = try await CLI.openStore(common)
            let t = try await CLI.run {
                try await store.setBudget(tenant, limit: limit, currency: currency, period: kind, soft: soft)
            }
            print("\(t.name): budget \(t.budget.map(CLI.describe) ?? "none")")
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a tenant's budget (the plan's applies).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String

        func run() async throws {
            let store = try await CLI.openStore(common)
            let t = try await CLI.run { try await store.clearBudget(tenant) }
            print("\(t.name): budget cleared")
        }
    }
}

/// `gateway quota show T`: what remains of the tenant's free quota, grant and budget now.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota", abstract: "Show or set a tenant's free quota.",
        subcommands: [Show.self, Set.self, Clear.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a tenant its own free allowance per period (replaces its plan's schedule).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String
        @Option(help: "Whole tokens, or with --currency a decimal credit amount.") var amount: String
        @Option(help: "Make the quota a credit in this currency instead of tokens.") var currency: String?
        @Option(help: "day or month (in the tenant's time zone).") var period: String = "month"

        func run() async throws {
            guard let kind = CalendarPeriod.Kind(rawValue: period) else { throw CLI.fail("--period: day or month") }
            let store = try await CLI.openStore(common)
            let t = try await CLI.run {
                try await store.setQuota(tenant, amount: amount, credit: currency, period: kind)
            }
            print("\(t.name): free quota \(amount) \(currency ?? "tokens") per \(kind.rawValue)")
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a tenant's own quota (the plan's applies).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String

        func run() async throws {
            let store = try await CLI.openStore(common)
            let t = try await CLI.run { try await store.clearQuota(tenant) }
            print("\(t.name): quota cleared")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Free quota, grant and budget: used and remaining.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let policies = try CLI.loadPolicies(common)
            let store = try await CLI.openStore(common)
            let t = try await CLI.run { try await store.tenant(tenant) }
            let (plan, standing) = try await QuotaReport.standing(tenant: t, policies: policies, store: store)
            if json {
                print(JSONWriter.serialize(QuotaReport.json(tenant: t, plan: plan, standing: standing)))
                return
            }
            print("tenant \(t.name) (\(t.id)), plan \(plan.name), time zone \(t.timezone)")
            if standing.isEmpty { print("no free quota and no budget: nothing is limited") }
            for line in QuotaReport.lines(plan: plan, standing: standing) { print(line) }
        }
    }
}
