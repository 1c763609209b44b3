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
    ) async throws -> some ApplicationProtocol {
        try await buildApplication(
            policies: policies, backend: .sqlite(store), eventLoopGroup: eventLoopGroup, logger: logger,
            environment: environment, configPath: configPath, mockTransport: mockTransport,
            onServerRunning: onServerRunning)
    }

    public static func buildApplication(
        policies: Policies,
        backend: StoreBackend,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        configPath: String? = nil,
        mockTransport: (any UpstreamTransport)? = nil,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) async throws -> some ApplicationProtocol {
        let config = policies.gateway
        let store = backend.store
        let keys = try await KeyDirectory(store: store)
        let metrics = GatewayMetrics()
        let ledger = backend.makeLedger(
            TimeInterval(config.server.reservationTTLSeconds), config.billingSinks.map(\.name)
        ) { metrics.ledgerCommit($0) }
        for model in policies.unpricedModels {
            logger.warning(
                "model has no price in force; its requests are recorded unpriced", metadata: ["model": "\(model)"])
        }
        let upstreams = UpstreamClients(config: config, eventLoopGroup: eventLoopGroup)
        let providerHealth = ProviderHealth(config: config, environment: environment)
        for (provider, reason) in providerHealth.missing.sorted(by: { $0.key < $1.key }) {
            logger.notice(
                "provider has no key; its models answer 503", metadata: ["provider": "\(provider)", "fix": "\(reason)"])
        }
        let notifier = AlertNotifier(
            webhook: policies.plans.alertWebhook, eventLoopGroup: eventLoopGroup, logger: logger)
        let policy = PolicyService(
            plans: policies.plans, prices: policies.prices, store: store, notifier: notifier, metrics: metrics,
            reservationTTL: TimeInterval(config.server.reservationTTLSeconds), shared: ledger as? PostgresLedger)
        let health = StoreHealth()
        let pipeline = try RequestPipeline(
            policies: policies, keys: keys, upstreams: upstreams, mockTransport: mockTransport, ledger: ledger,
            storeHealth: health,
            policy: policy, metrics: metrics, health: providerHealth, logger: logger)
        let counting = TokenCountEndpoint(config: config, cache: TokenCountCache())

        let router = Router(context: GatewayRequestContext.self)
        router.get("/healthz") { _, _ in JSONResponse.text(200, #"{"status":"ok"}"#, requestID: nil) }
        router.get("/readyz") { _, _ -> Response in
            do {
                // Bounded: a database that does not answer (PostgreSQL gone) is not ready, at once.
                guard await offEventLoop({ await StoreHealth.check(store, timeout: .seconds(2)) }) else {
                    throw StoreError.invalid("the store does not answer")
                }
                return JSONResponse.make(
                    200, .object([("status", "ready"), ("providers", ProviderHealth.json(providerHealth.snapshot()))]),
                    requestID: nil)
            } catch {
                return JSONResponse.text(503, #"{"status":"store unavailable"}"#, requestID: nil)
            }
        }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(
                    byteBuffer: ByteBuffer(
                        bytes: metrics.providers(providerHealth.snapshot()).exposition(
                            ledgerQueueDepth: ledger.queueDepth, outstandingReservations: policy.outstandingReservations
                        ))))
        }

        // The tenant API: every route behind the one middleware that checks a tenant's key.
        let tenantAuthentication = TenantAuthentication(
            authenticator: Authenticator(directory: keys),
            recordRefusal: { key, request, context, error in
                await pipeline.recordRefusal(key, path: request.uri.path, requestID: context.requestID, error: error)
            })
        let tenantAPI = router.group("v1").add(middleware: tenantAuthentication)
            .group(context: TenantRequestContext.self)
        tenantAPI.get("models") { request, context in pipeline.listModels(request: request, context: context) }
        let proxy: @Sendable (APIEndpoint, Request, TenantRequestContext) async -> Response = {
            await pipeline.handle($0, request: $1, context: $2)
        }
        // Also answered by `ProxyFastPath`, with the same middleware and handler.
        for endpoint in APIEndpoint.allCases {
            tenantAPI.post(RouterPath(String(endpoint.rawValue.dropFirst("/v1/".count)))) { request, context in
                await proxy(endpoint, request, context)
            }
        }
        tenantAPI.post("messages/count_tokens") { request, context in
            await counting.handle(.anthropic, request: request, context: context)
        }
        tenantAPI.post("responses/input_tokens") { request, context in
            await counting.handle(.responses, request: request, context: context)
        }
        tenantAPI.post("chat/completions/count_tokens") { request, context in
            await counting.handle(.chat, request: request, context: context)
        }

        // The admin API: every route behind the one middleware that checks the operator's token.
        let adminAPI = router.group("admin/v1").add(
            middleware: AdminAuthentication(authenticator: AdminAuthenticator(environment: environment)))
        AdminRoutes(store: store).register(on: adminAPI)
        AdminAPI(store: store, policy: policy, sinks: config.billingSinks).register(
            on: router, admin: adminAPI, tenant: tenantAPI)

        // The web console (docs/console.md): HTML pages with a sign-in of their own.
        Console(store: store, policy: policy, keys: keys, environment: environment).register(on: router)

        // Anything else under /v1 answers 404 in the client's own error format.
        let notFound: @Sendable (Request, GatewayRequestContext) async throws -> Response = { request, _ in
            throw GatewayError.notFound(path: request.uri.path)
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("/v1/**", method: method, use: notFound)
        }

        var appLogger = logger
        appLogger[metadataKey: "component"] = "server"
        let limits = ConnectionLimits(
            headerTimeout: .milliseconds(Int64(config.server.headerTimeoutMilliseconds)),
            idleTimeout: .milliseconds(Int64(config.server.idleTimeoutMilliseconds)))
        let responder = ChildTaskResponder(
            inner: ProxyFastPath(router: router.buildResponder(), authentication: tenantAuthentication, handle: proxy))
        let serverLogger = appLogger
        return Application(
            responder: responder,
            // Hummingbird's application responder writes through `NIOAsyncChannel`; the channel answers
            // through the same responder itself.
            server: HTTPServerBuilder { _ in
                GuardedHTTP1Channel(respond: responder, limits: limits, logger: serverLogger)
            },
            configuration: .init(
                address: .hostname(config.server.host, port: config.server.port), serverName: nil,
                backlog: 1024,
                availableConnectionsDelegate: .maximum(config.server.maxConnections, logger: appLogger)),
            services: [
                KeyDirectoryRefresher(directory: keys, logger: logger),
                StoreHealthMonitor(store: store, health: health, logger: logger),
                // A quarter of the expiry (at most 10 s): an expired hold lasts at most 25% longer.
                ReservationSweeper(
                    policy: policy, metrics: metrics, logger: logger,
                    interval: .milliseconds(min(10_000, config.server.reservationTTLSeconds * 250))),
                UpstreamClientsService(clients: upstreams),
                BillingSinks(
                    sinks: config.billingSinks, outbox: store, metrics: metrics, eventLoopGroup: eventLoopGroup,
                    environment: environment, logger: logger),
                notifier,
                PolicyReloader(configPath: configPath, gateway: config, policy: policy, logger: logger),
            ],
            onServerRunning: onServerRunning,
            eventLoopGroupProvider: .shared(eventLoopGroup),
            logger: appLogger
        )
    }
}

/// Answers each request in a child task of the connection's task.
///
/// Swift's task allocator keeps a task's deepest slab until the task ends, and a connection's task lives
/// as long as the connection: the stack a request needs until its response head (middleware, pipeline,
/// admission, the upstream call) would stay allocated for as long as its stream lasts. In a child task it
/// is freed when the head is returned, and the body is written from the shallower connection task.
struct ChildTaskResponder: HTTPResponder {
    let inner: ProxyFastPath

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        async let response = inner.respond(to: request, context: context)
        return try await response
    }
}
