import ArgumentParser
import Foundation
import Gateway
import Metering

struct SinksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sinks", abstract: "Billing sinks: the backlog, the dead-letter list, and retrying it.",
        subcommands: [Status.self, Dead.self, Retry.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each configured sink's pending and dead entries.")
        @OptionGroup var common: CommonOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let sinks = try CLI.loadPolicies(common).gateway.billingSinks
            let store = try await CLI.openStore(common)
            let status = try await CLI.run { try await store.outboxStatus() }
            var rows: [JSONValue] = []
            for sink in sinks {
                let s = status.first { $0.sink == sink.name }
                let oldest = s?.oldestPending.map { BillingExportFormat.timestamp($0) }
                if json {
                    rows.append(
                        .object([
                            ("name", .string(sink.name)), ("kind", .string(sink.kind.rawValue)),
                            ("pending", .int(s?.pending ?? 0)), ("dead", .int(s?.dead ?? 0)),
                            ("oldest_pending_at", oldest.map(JSONValue.string) ?? .null),
                        ]))
                } else {
                    print(
                        "\(sink.name)\t\(sink.kind.rawValue)\tpending=\(s?.pending ?? 0)\tdead=\(s?.dead ?? 0)"
                            + (oldest.map { "\toldest_pending=\($0)" } ?? ""))
                }
            }
            if json { print(JSONWriter.serialize(.object([("data", .array(rows))]))) }
            if sinks.isEmpty && !json { print("no billing_sinks in the configuration") }
        }
    }

    struct Dead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Records a sink refused for good.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Only this sink.") var sink: String?
        @Option(help: "At most this many.") var limit: Int = 1_000

        func run() async throws {
            let store = try await CLI.openStore(common)
            for d in try await CLI.run({ try await store.deadLetters(sink: sink, limit: max(1, limit)) }) {
                print(
                    "\(d.sink)\t\(d.recordID)\tattempts=\(d.attempts)\tstatus=\(d.lastStatus.map(String.init) ?? "-")\t"
                        + (d.lastError ?? ""))
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put dead-lettered records back in line for delivery (after fixing what the sink refused).")
        @OptionGroup var common: CommonOptions
        @Option(help: "Only this sink.") var sink: String?
        @Option(help: "Only this record id.") var record: String?

        func run() async throws {
            let store = try await CLI.openStore(common)
            let n = try await CLI.run { try await store.retryDead(sink: sink, recordID: record) }
            print("\(n) dead-lettered record\(n == 1 ? "" : "s") back in line")
        }
    }
}
