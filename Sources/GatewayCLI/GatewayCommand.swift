import ArgumentParser
import Foundation
import Gateway
import Logging
import Metering

/// `gateway`: serve, manage tenants and keys, and run the upstream emulator.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "A usage-metering reverse proxy for LLM APIs.",
        subcommands: [
            ServeCommand.self, MigrateCommand.self, TenantsCommand.self, KeysCommand.self, BudgetsCommand.self,
            QuotaCommand.self,
            ExportCommand.self, UsageCommand.self, ReportCommand.self, SinksCommand.self,
            TokensCommand.self, EmulatorCommand.self,
        ]
    )

    init() {}

    /// Entry point for the thin `gateway` executable.
    static func runFromCommandLine() async {
        await main()
    }
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "Data directory (the SQLite database lives here).")
    var data: String = "./data"

    @Option(help: "Gateway configuration file.")
    var config: String = "policies/gateway.yaml"

    @Option(
        help: ArgumentHelp(
            "PostgreSQL shared by several replicas (postgres://user:password@host:5432/database).",
            discussion:
                "Default: the environment variable GATEWAY_DATABASE_URL; with neither, the SQLite store in --data."
        ))
    var databaseURL: String?

    /// The database URL in force: the flag, else the environment.
    var resolvedDatabaseURL: String? {
        if let databaseURL, !databaseURL.isEmpty { return databaseURL }
        let env = ProcessInfo.processInfo.environment["GATEWAY_DATABASE_URL"] ?? ""
        return env.isEmpty ? nil : env
    }

    /// The URL with any password replaced, for logs.
    static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url) else { return "(unparseable database URL)" }
        if parts.password != nil { parts.password = "***" }
        return parts.string ?? "(database URL)"
    }
}

enum CLI {
    static func bootstrapLogging() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
            handler.logLevel = level ?? .info
            return LazyLogHandler(handler)
        }
    }

    /// Stops a command with a message on stderr and exit code 1.
    static func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
        return ExitCode.failure
    }

    /// The store the options name: PostgreSQL (`--database-url`, `GATEWAY_DATABASE_URL`) or SQLite in `--data`.
    static func openStore(_ common: CommonOptions) async throws -> any Store {
        if let url = common.resolvedDatabaseURL {
            do {
                return try await PostgresStore.open(url: url, connectTimeout: .seconds(15))
            } catch {
                throw fail("cannot open the database \(CommonOptions.redacted(url)): \(error)")
            }
        }
        do {
            return try GatewayStore(dataDirectory: common.data)
        } catch {
            throw fail("cannot open the store in \(common.data): \(error)")
        }
    }

    static func loadPolicies(_ common: CommonOptions) throws -> Policies {
        do {
            return try Policies.load(configPath: common.config)
        } catch {
            throw fail("configuration: \(error.description)")
        }
    }

    /// Runs a store operation, turning its errors into a message and exit code 1.
    static func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StoreError {
            throw fail(error.description)
        }
    }

    static func describe(_ budget: Tenant.BudgetOverride) -> String {
        "\(budget.limit.shortDecimalString) \(budget.limit.currency) per \(budget.period.rawValue), "
            + (budget.soft ? "soft" : "hard")
    }

    static func iso(_ date: Date) -> String {
        ISO8601DateFormatter().string(from: date)
    }
}
