import AsyncHTTPClient
import Foundation
import Logging
import Metering
import NIOCore
import ServiceLifecycle

/// Runs a deliverer per configured billing sink, over one HTTP client (redirects off), beside the server.
struct BillingSinks: Service {
    let deliverers: [SinkDeliverer]
    let client: HTTPClient?

    init(
        sinks: [BillingSinkConfig], outbox: any OutboxStore, metrics: GatewayMetrics,
        eventLoopGroup: any EventLoopGroup,
        environment: [String: String], logger: Logger
    ) {
        guard !sinks.isEmpty else {
            deliverers = []
            client = nil
            return
        }
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(60)))
        // Stripe and webhooks take one record per request: several in flight per sink keep up with load.
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 16)
        let client = HTTPClient(eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration)
        self.client = client
        var logger = logger
        logger[metadataKey: "component"] = "sinks"
        deliverers = sinks.map { sink in
            let secret = SinkDeliverer.secret(for: sink, environment: environment)
            if secret == nil && (sink.secretEnv != nil || sink.secretFile != nil) {
                logger.warning(
                    "billing sink has no secret: its deliveries will be refused until one is set",
                    metadata: ["sink": "\(sink.name)"])
            }
            return SinkDeliverer(
                sink: sink, secret: secret, outbox: outbox, client: client, metrics: metrics, logger: logger)
        }
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            for deliverer in deliverers { group.addTask { try? await deliverer.run() } }
        }
        try? await gracefulShutdown()
        try await client?.shutdown()
    }
}
