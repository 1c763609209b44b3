import ArgumentParser
import Foundation
import Gateway
import GatewayMock
import Hummingbird
import Logging
import Metering
import NIOCore
import NIOPosix

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the gateway.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Address to listen on (overrides the config file).")
    var host: String?

    @Option(help: "Port to listen on (overrides the config file; 0 picks a free port).")
    var port: Int?

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int?

    func run() async throws {
        CLI.bootstrapLogging()
        let logger = Logger(label: "gateway")
        var policies: Policies
        do {
            policies = try Policies.load(configPath: common.config)
        } catch {
            throw CLI.fail("configuration: \(error.description)")
        }
        if let host { policies.gateway.server.host = host }
        if let port { policies.gateway.server.port = port }
        let backend: StoreBackend
        if let url = common.resolvedDatabaseURL {
            do {
                let store = try await PostgresStore.open(url: url, logger: logger)
                backend = .postgres(store, location: CommonOptions.redacted(url))
            } catch {
                throw CLI.fail("cannot open the database \(CommonOptions.redacted(url)): \(error)")
            }
        } else {
            do {
                let store = try GatewayStore(
                    dataDirectory: common.data,
                    synchronous: policies.gateway.server.ledgerSync == .full ? "FULL" : "NORMAL")
                backend = .sqlite(store)
            } catch {
                throw CLI.fail("cannot open the store in \(common.data): \(error)")
            }
        }
        // The singleton group, sized by --threads and installed as the global executor in main.
        let group = MultiThreadedEventLoopGroup.singleton
        // The mock provider reports usage counted by the real tokenizer, so demos show true counts.
        let mock = MockTransport(countTokens: MockTransport.o200kCount)
        let app = try await GatewayServer.buildApplication(
            policies: policies, backend: backend, eventLoopGroup: group, logger: logger, configPath: common.config,
            mockTransport: mock,
            onServerRunning: { channel in
                let address = channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                logger.notice("gateway listening", metadata: ["address": "\(address)", "store": "\(backend.location)"])
            })
        try await app.runService()
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Brings the PostgreSQL schema up to date and exits (serve also does this at start).")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        CLI.bootstrapLogging()
        guard let url = common.resolvedDatabaseURL else {
            throw CLI.fail("migrate needs --database-url or GATEWAY_DATABASE_URL (the SQLite store migrates itself)")
        }
        do {
            let store = try await PostgresStore.open(url: url)
            store.close()
        } catch {
            throw CLI.fail("cannot migrate \(CommonOptions.redacted(url)): \(error)")
        }
        print("schema up to date: \(CommonOptions.redacted(url))")
    }
}

struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run the upstream emulator: the mock provider over HTTP, for benchmarks and manual tests.")

    @Option var host: String = "127.0.0.1"
    @Option var port: Int = 9090
    @Option(help: "Event loop threads (default: one per core).") var threads: Int?
    @Option(help: "Words in each reply.") var replyWords: Int = 24
    @Option(help: "Chunks in a streamed reply.") var streamChunks: Int = 8

    func run() async throws {
        CLI.bootstrapLogging()
        let emulator = UpstreamEmulator(
            settings: .init(replyWords: replyWords, streamChunks: streamChunks), record: false)
        let group = MultiThreadedEventLoopGroup.singleton
        let app = Application(
            router: emulator.router(),
            configuration: .init(address: .hostname(host, port: port), backlog: 1024),
            eventLoopGroupProvider: .shared(group),
            logger: Logger(label: "emulator"))
        try await app.runService()
    }
}
