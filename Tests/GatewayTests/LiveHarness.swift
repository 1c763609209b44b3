import AsyncHTTPClient
import Foundation
import Gateway
import GatewayMock
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import Logging
import Metering
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A gateway and an upstream emulator on real loopback sockets, with a fresh SQLite store.
struct LiveHarness {
    static let upstreamSecret = "upstream-provider-secret-0001"

    let gatewayPort: Int
    let emulatorPort: Int
    let emulator: UpstreamEmulator
    let store: GatewayStore
    let clientKey: String
    let tenant: Tenant
    let client: HTTPClient
    let config: GatewayConfig

    var gatewayURL: String { "http://127.0.0.1:\(gatewayPort)" }
    var emulatorURL: String { "http://127.0.0.1:\(emulatorPort)" }

    static func configYAML(emulatorPort: Int, maxBody: Int, server: String = "", tls: TLSUpstream? = nil) -> String {
        let tlsProviders =
            tls.map {
                """
                  - name: emu-tls
                    kind: openai
                    base_url: https://localhost:\($0.port)/v1
                    api_key_env: EMU_KEY
                    tls_ca_file: \($0.caFile)
                  - name: emu-tls-untrusted
                    kind: openai
                    base_url: https://localhost:\($0.port)/v1
                    api_key_env: EMU_KEY
                    timeouts: {connect_ms: 1000, first_byte_ms: 2000, idle_read_ms: 2000}
                  - name: emu-tls-as-plain
                    kind: openai
                    base_url: http://localhost:\($0.port)/v1
                    api_key_env: EMU_KEY
                    timeouts: {connect_ms: 1000, first_byte_ms: 2000, idle_read_ms: 2000}
                """
            } ?? ""
        let tlsModels =
            tls == nil
            ? ""
            : """
              - {name: tls-gpt, provider: emu-tls, upstream_model: upstream-gpt, tokenizer: o200k_base}
              - {name: tls-untrusted-gpt, provider: emu-tls-untrusted, tokenizer: o200k_base}
              - {name: tls-as-plain-gpt, provider: emu-tls-as-plain, tokenizer: o200k_base}
            """
        return """
            server:
              host: 127.0.0.1
              port: 0
              max_request_body_bytes: \(maxBody)
            \(server)
            providers:
              - {name: mock, kind: mock, mock: {reply_words: 12, stream_chunks: 4}}
              - name: emu
                kind: openai
                base_url: http://127.0.0.1:\(emulatorPort)/v1
                api_key_env: EMU_KEY
              - name: emu-anthropic
                kind: anthropic
                base_url: http://127.0.0.1:\(emulatorPort)/v1
                api_key_env: EMU_KEY
              - name: slow
                kind: openai
                base_url: http://127.0.0.1:\(emulatorPort)/v1
                api_key_env: EMU_KEY
                timeouts: {connect_ms: 1000, first_byte_ms: 300, idle_read_ms: 400}
              - name: sleepy
                kind: openai
                base_url: http://127.0.0.1:\(emulatorPort)/v1
                api_key_env: EMU_KEY
                timeouts: {connect_ms: 1000, first_byte_ms: 10000, idle_read_ms: 3000}
              - name: dead
                kind: openai
                base_url: http://127.0.0.1:1/v1
                api_key_env: EMU_KEY
              - name: keyless
                kind: openai
                base_url: http://127.0.0.1:\(emulatorPort)/v1
                api_key_env: NOT_SET_ANYWHERE_KEY
            \(tlsProviders)
            models:
              - {name: mock-gpt, provider: mock, tokenizer: o200k_base}
              - {name: emu-gpt, provider: emu, upstream_model: upstream-gpt, tokenizer: o200k_base}
              - {name: emu-claude, provider: emu-anthropic, tokenizer: o200k_base}
              - {name: slow-gpt, provider: slow, tokenizer: o200k_base}
              - {name: sleepy-gpt, provider: sleepy, tokenizer: o200k_base}
              - {name: dead-gpt, provider: dead, tokenizer: o200k_base}
              - {name: keyless-gpt, provider: keyless, tokenizer: o200k_base}
            \(tlsModels)
            """
    }

    /// An emulator behind TLS, with a certificate for `localhost` signed by a CA made for the run.
    struct TLSUpstream {
        var port: Int
        var caFile: String
    }

    /// A throwaway CA and a `localhost` certificate it signed (openssl), in `dir`.
    static func makeCertificates(in dir: String) throws -> (ca: String, cert: String, key: String) {
        // Through `system()`, as PostgresTestCluster runs its commands: Foundation's `Process` wait hung
        // here once (a CI run stuck in `waitUntilExit` after the suite had finished).
        func openssl(_ arguments: [String]) throws {
            let (status, output) = PostgresTestCluster.run(
                "/bin/sh", ["-c", "cd \"$0\" && exec openssl \"$@\"", dir] + arguments)
            guard status == 0 else {
                throw HarnessError("openssl \(arguments.first ?? "") failed (\(status)): \(output)")
            }
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(
            ["req", "-x509"] + ec + [
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gateway test CA",
            ])
        try openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n".write(
            toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        ])
        return (dir + "/ca.pem", dir + "/server.pem", dir + "/server.key")
    }

    static let pricesYAML = """
        prices:
          mock-gpt:
            - {effective_from: 2020-01-01, currency: USD, input: "2.50", cached_input: "1.25", output: "10.00"}
          emu-gpt:
            - {effective_from: 2020-01-01, currency: CNY, input: "2", cached_input: "0.5", output: "8"}
          emu-claude:
            - {effective_from: 2020-01-01, currency: USD, input: "3", cached_input: "0.30", cache_write: "3.75", output: "15"}
        """

    /// Every billing record so far, in commit order.
    func records() throws -> [BillingRecord] {
        try store.billingPageNow(
            .init(from: .distantPast, to: .distantFuture), afterSeq: 0, limit: 100_000
        ).map(\.record)
    }

    /// The record of the request that got `requestID`, waiting briefly for records that are written
    /// after the client's response ended (errors, disconnects).
    func record(requestID: String) async throws -> BillingRecord? {
        for _ in 0..<100 {
            if let r = try records().first(where: { $0.requestID == requestID }) { return r }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Runs `body` with a live gateway and emulator; everything is shut down afterwards.
    static func run(
        maxBody: Int = 64 * 1024, plans: String? = nil, server: String = "", tlsUpstream: Bool = false,
        _ body: @Sendable (LiveHarness) async throws -> Void
    ) async throws {
        let logger = Logger(label: "test")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try GatewayStore(dataDirectory: dir)
        let tenant = try store.createTenant(name: "acme")
        let (_, secret) = try store.createKey(tenant: tenant.id, name: "test")

        let emulator = UpstreamEmulator(settings: .init(replyWords: 12, streamChunks: 4))
        let emulatorPort = PortBox()
        let emulatorApp = Application(
            router: emulator.router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { emulatorPort.set($0.localAddress?.port ?? 0) },
            eventLoopGroupProvider: .singleton,
            logger: logger)

        var emulators: [any Service] = [emulatorApp]
        let tlsPort = PortBox()
        var caFile = ""
        if tlsUpstream {
            let (ca, cert, key) = try makeCertificates(in: dir + "/tls")
            caFile = ca
            let tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            emulators.append(
                Application(
                    router: emulator.router(),
                    server: try .tls(.http1(), tlsConfiguration: tls),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    onServerRunning: { tlsPort.set($0.localAddress?.port ?? 0) },
                    eventLoopGroupProvider: .singleton,
                    logger: logger))
        }
        let emulatorGroup = ServiceGroup(
            configuration: .init(services: emulators, gracefulShutdownSignals: [], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulatorGroup.run() }
            let ePort = await emulatorPort.wait()
            let tls = tlsUpstream ? TLSUpstream(port: await tlsPort.wait(), caFile: caFile) : nil

            let config = try GatewayConfig.parse(
                yaml: configYAML(emulatorPort: ePort, maxBody: maxBody, server: server, tls: tls), file: "test.yaml")
            let prices = try PriceBook.parse(yaml: pricesYAML, file: "prices.yaml")
            let planBook = try plans.map { try PlanBook.parse(yaml: $0, file: "plans.yaml") } ?? .unlimited
            let gatewayPort = PortBox()
            let gatewayApp = try await GatewayServer.buildApplication(
                policies: Policies(gateway: config, prices: prices, plans: planBook), store: store,
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger,
                environment: ["EMU_KEY": upstreamSecret],
                mockTransport: MockTransport(countTokens: MockTransport.o200kCount),
                onServerRunning: { gatewayPort.set($0.localAddress?.port ?? 0) })
            let gatewayGroup = ServiceGroup(
                configuration: .init(services: [gatewayApp], gracefulShutdownSignals: [], logger: logger))
            group.addTask { try await gatewayGroup.run() }
            let gPort = await gatewayPort.wait()

            var clientConfig = HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled)
            clientConfig.timeout = .init(connect: .seconds(5), read: .seconds(20))
            clientConfig.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 512
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfig)
            let harness = LiveHarness(
                gatewayPort: gPort, emulatorPort: ePort, emulator: emulator, store: store, clientKey: secret,
                tenant: tenant, client: client, config: config)
            do {
                try await body(harness)
            } catch {
                try? await client.shutdown()
                await gatewayGroup.triggerGracefulShutdown()
                await emulatorGroup.triggerGracefulShutdown()
                throw error
            }
            try await client.shutdown()
            await gatewayGroup.triggerGracefulShutdown()
            await emulatorGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    // MARK: Requests

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONValue? { try? JSONReader.parse(body) }
    }

    func post(
        _ url: String, body: String, headers: [(String, String)] = [], auth: Bool = true
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if auth { request.headers.add(name: "authorization", value: "Bearer \(clientKey)") }
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    func get(_ url: String, headers: [(String, String)] = []) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        let response = try await client.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    /// Sends a request and returns the raw response so a test can read its body chunk by chunk.
    func open(_ url: String, body: String, headers: [(String, String)] = []) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "authorization", value: "Bearer \(clientKey)")
        for (n, v) in headers { request.headers.add(name: n, value: v) }
        request.body = .bytes(ByteBuffer(string: body))
        return try await client.execute(request, timeout: .seconds(30))
    }
}

/// Hands a bound port from `onServerRunning` to the test.
final class PortBox: Sendable {
    private let state = Mutex<(port: Int?, waiters: [CheckedContinuation<Int, Never>])>((nil, []))

    func set(_ port: Int) {
        let waiters = state.withLock { s -> [CheckedContinuation<Int, Never>] in
            s.port = port
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: port) }
    }

    func wait() async -> Int {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> Int? in
                if let p = s.port { return p }
                s.waiters.append(c)
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }
}
