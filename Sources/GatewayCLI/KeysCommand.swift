import ArgumentParser
import Foundation
import Gateway
import Metering

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke virtual keys.",
        subcommands: [Create.self, List.self, Revoke.self, Limits.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key. The secret is printed once, alone on the last line; only its hash is kept.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Tenant id or name.") var tenant: String
        @Option(help: "A label for the key.") var name: String?

        func run() async throws {
            let store = try await CLI.openStore(common)
            do {
                let (key, secret) = try await store.createKey(tenant: tenant, name: name)
                print("key id: \(key.id)  prefix: \(key.prefix)  tenant: \(key.tenantID)")
                print("This secret is shown once and cannot be recovered:")
                print(secret)
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (prefixes only, never secrets).")
        @OptionGroup var common: CommonOptions
        @Option(help: "Only this tenant's keys.") var tenant: String?

        func run() async throws {
            let store = try await CLI.openStore(common)
            do {
                print("ID\tPREFIX\tTENANT\tNAME\tSTATUS\tCREATED")
                for k in try await store.keys(tenant: tenant) {
                    let status = k.revokedAt.map { "revoked \(CLI.iso($0))" } ?? "active"
                    print("\(k.id)\t\(k.prefix)\t\(k.tenantID)\t\(k.name ?? "-")\t\(status)\t\(CLI.iso(k.createdAt))")
                }
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key by id or prefix; a running gateway refuses it within a second.")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Key id or prefix.") var key: String

        func run() async throws {
            let store = try await CLI.openStore(common)
            do {
                let k = try await store.revokeKey(key)
                print("revoked \(k.id) (\(k.prefix))")
            } catch let error as StoreError {
                throw CLI.fail(error.description)
            }
        }
    }

    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a key's own rate limits (replacing its plan's).")
        @OptionGroup var common: CommonOptions
        @Argument(help: "Key id or prefix.") var key: String
        @Option(help: "Requests per minute.") var rpm: Int?
        @Option(help: "Tokens per minute (estimated at admission).") var tpm: Int?
        @Option(help: "Concurrent requests.") var concurrent: Int?

        func run() async throws {
            let store = try await CLI.openStore(common)
            let k = try await CLI.run {
                try await store.setKeyLimits(
                    key, limits: .init(requestsPerMinute: rpm, tokensPerMinute: tpm, concurrent: concurrent))
            }
            print(
                "\(k.id): rpm=\(k.requestsPerMinute.map(String.init) ?? "plan") tpm=\(k.tokensPerMinute.map(String.init) ?? "plan") concurrent=\(k.concurrent.map(String.init) ?? "plan")"
            )
        }
    }
}
