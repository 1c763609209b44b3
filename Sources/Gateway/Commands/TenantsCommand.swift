import ArgumentParser
import Foundation

struct TenantsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "Create and inspect tenants.",
        subcommands: [Create.self, List.self, Show.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; prints its id.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "A unique name.") var name: String
        @Option(help: "IANA time zone for calendar periods.") var timezone: String = "UTC"

        func run() throws {
            let store = try GatewayStore(dataDirectory: common.data)
            do {
                let tenant = try store.createTenant(name: name, timezone: timezone)
                print(tenant.id)
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants.")
        @OptionGroup var common: CommonOptions

        func run() throws {
            let store = try GatewayStore(dataDirectory: common.data)
            print("ID\tNAME\tSTATUS\tTIMEZONE\tCREATED")
            for t in try store.tenants() {
                print("\(t.id)\t\(t.name)\t\(t.status)\t\(t.timezone)\t\(CLI.iso(t.createdAt))")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tenant and its keys.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Tenant id or name.") var tenant: String

        func run() throws {
            let store = try GatewayStore(dataDirectory: common.data)
            do {
                let t = try store.tenant(tenant)
                print("id:        \(t.id)")
                print("name:      \(t.name)")
                print("status:    \(t.status)")
                print("timezone:  \(t.timezone)")
                print("created:   \(CLI.iso(t.createdAt))")
                let keys = try store.keys(tenant: t.id)
                print(
                    "keys:      \(keys.filter { !$0.isRevoked }.count) active, \(keys.filter(\.isRevoked).count) revoked"
                )
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }
}
