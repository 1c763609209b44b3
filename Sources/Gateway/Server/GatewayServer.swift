import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Metering
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Builds the gateway application: routes, the pipeline and the services that run beside the server.
public enum GatewayServer {
    public static func buildApplication(
        policies: Policies,
        store: GatewayStore,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        configPath: String? = nil,
        mockTransport: (any UpstreamTransport)? = nil,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let config = policies.gateway
        let keys = try KeyDirectory(store: store)
        let metrics = GatewayMetrics()
        let ledger = SQLiteLedger(store: store, onCommit: { metrics.ledgerCommit($0) })
        for model in policies.unpricedModels {
            logger.warning(
                "model has no price in force; its requests are recorded unpriced", metadata: ["model": "\(model)"])
        }
        let upstreams = UpstreamClients(config: config, eventLoopGroup: eventLoopGroup, environment: environment)
        for (provider, reason) in upstreams.unconfiguredProviders.sorted(by: { $0.key < $1.key }) {
            logger.notice(
                "provider has no key; its models answer 503", metadata: ["provider": "\(provider)", "fix": "\(reason)"])
        }
        let notifier = AlertNotifier(
            webhook: policies.plans.alertWebhook, eventLoopGroup: eventLoopGroup, logger: logger)
        let policy = PolicyService(
            plans: policies.plans, prices: policies.prices, store: store, notifier: notifier, metrics: metrics,
            reservationTTL: TimeInterval(config.server.reservationTTLSeconds))
        let pipeline = try RequestPipeline(
            policies: policies, keys: keys, upstreams: upstreams, mockTransport: mockTransport, ledger: ledger,
            policy: policy, metrics: metrics, logger: logger)
        let counting = TokenCountEndpoint(
            config: config, authenticator: Authenticator(directory: keys), cache: TokenCountCache())

        let router = Router(context: GatewayRequestContext.self)
        router.get("/healthz") { _, _ in JSONText(#"{"status":"ok"}"#) }
        router.get("/readyz") { _, _ -> Response in
            do {
                try await offEventLoop { try store.ping() }
                return JSONText(#"{"status":"ready"}"#).response(status: .ok)
            } catch {
                return JSONText(#"{"status":"store unavailable"}"#).response(status: .serviceUnavailable)
            }
        }
        let adminAuth = AdminAuthenticator(environment: environment)
        AdminRoutes(store: store, auth: adminAuth).register(on: router)
        AdminAPI(store: store, auth: adminAuth, policy: policy, keys: Authenticator(directory: keys)).register(
            on: router)
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        bytes: metrics.exposition(
                            ledgerQueueDepth: ledger.queueDepth, outstandingReservations: policy.outstandingReservations
                        ))))
        }
        router.get("/v1/models") { request, context in await pipeline.listModels(request: request, context: context) }
        for endpoint in APIEndpoint.allCases {
            router.post(RouterPath(endpoint.rawValue)) { request, context in
                await pipeline.handle(endpoint, request: request, context: context)
            }
        }
        router.post("/v1/messages/count_tokens") { request, context in
            await counting.handle(.anthropic, request: request, context: context)
        }
        router.post("/v1/responses/input_tokens") { request, context in
            await counting.handle(.responses, request: request, context: context)
        }
        router.post("/v1/chat/completions/count_tokens") { request, context in
            await counting.handle(.chat, request: request, context: context)
        }
        // Anything else under /v1 answers 404 in the client's own error format.
        let notFound: @Sendable (Request, GatewayRequestContext) async throws -> Response = { request, context in
            GatewayError.notFound(path: request.uri.path).response(
                dialect: APIDialect.of(path: request.uri.path), requestID: context.requestID)
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("/v1/**", method: method, use: notFound)
        }

        var appLogger = logger
        appLogger[metadataKey: "component"] = "server"
        let limits = ConnectionLimits(
            headerTimeout: .milliseconds(Int64(config.server.headerTimeoutMilliseconds)),
            idleTimeout: .milliseconds(Int64(config.server.idleTimeoutMilliseconds)))
        return Application(
            router: router,
            server: HTTPServerBuilder { responder in GuardedHTTP1Channel(responder: responder, limits: limits) },
            configuration: .init(
                address: .hostname(config.server.host, port: config.server.port), serverName: nil,
                backlog: 1024,
                availableConnectionsDelegate: .maximum(config.server.maxConnections, logger: appLogger)),
            services: [
                KeyDirectoryRefresher(directory: keys, logger: logger),
                ReservationSweeper(policy: policy, metrics: metrics, logger: logger, interval: .seconds(10)),
                UpstreamClientsService(clients: upstreams),
                notifier,
                PolicyReloader(configPath: configPath, gateway: config, policy: policy, logger: logger),
            ],
            onServerRunning: onServerRunning,
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: appLogger
        )
    }
}

/// A small JSON body written by the gateway itself.
struct JSONText: ResponseGenerator {
    let text: String
    init(_ text: String) { self.text = text }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        response(status: .ok)
    }

    func response(status: HTTPResponse.Status) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
