import ArgumentParser
import Foundation
import Gateway
import Metering

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "Create and inspect tenants.",
        subcommands: [Create.self, List.self, Show.self, Update.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; prints its id.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "A unique name.") var name: String
        @Option(help: "IANA time zone for calendar periods.") var timezone: String = "UTC"

        func run() async throws {
            let store = try await CLI.openStore(common)
            do {
                let tenant = try await store.createTenant(name: name, timezone: timezone)
                print(tenant.id)
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let store = try await CLI.openStore(common)
            print("ID\tNAME\tSTATUS\tTIMEZONE\tCREATED")
            for t in try await store.tenants() {
                print("\(t.id)\t\(t.name)\t\(t.status.rawValue)\t\(t.timezone)\t\(CLI.iso(t.createdAt))")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tenant and its keys.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String

        func run() async throws {
            let store = try await CLI.openStore(common)
            do {
                let t = try await store.tenant(tenant)
                print("id:        \(t.id)")
                print("name:      \(t.name)")
                print("status:    \(t.status.rawValue)")
                print("timezone:  \(t.timezone)")
                print("plan:      \(t.plan ?? "(default)")")
                print("currency:  \(t.currency ?? "-")")
                if let budget = t.budget { print("budget:    \(CLI.describe(budget))") }
                print("created:   \(CLI.iso(t.createdAt))")
                let keys = try await store.keys(tenant: t.id)
                print(
                    "keys:      \(keys.filter { !$0.isRevoked }.count) active, \(keys.filter(\.isRevoked).count) revoked"
                )
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a tenant's plan, time zone, currency, status or Stripe customer.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String
        @Option(help: "Plan name from plans.yaml.") var plan: String?
        @Option(help: "IANA time zone for calendar periods, such as Asia/Shanghai.") var timezone: String?
        @Option(help: "ISO 4217 currency the tenant is billed in.") var currency: String?
        @Option(help: "active or suspended (a suspended tenant's keys are refused).") var status: String?
        @Option(help: "The tenant's Stripe customer id (cus_…) for a stripe billing sink; \"\" clears it.")
        var stripeCustomer: String?

        func run() async throws {
            if let plan {
                let policies = try CLI.loadPolicies(common)
                guard policies.plans.plans[plan] != nil else {
                    throw CLI.fail(
                        "no plan '\(plan)' in the plans file; plans: \(policies.plans.plans.keys.sorted().joined(separator: ", "))"
                    )
                }
            }
            let store = try await CLI.openStore(common)
            let t = try await CLI.run {
                try await store.updateTenant(
                    tenant,
                    .init(
                        plan: plan, timezone: timezone, currency: currency, status: status,
                        stripeCustomerID: stripeCustomer))
            }
            print(
                "\(t.id)\t\(t.name)\tplan=\(t.plan ?? "(default)")\ttimezone=\(t.timezone)\tstatus=\(t.status.rawValue)"
                    + (t.stripeCustomerID.map { "\tstripe_customer=\($0)" } ?? "")
            )
        }
    }
}
