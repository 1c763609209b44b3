import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metering
import NIOCore

/// The request path, in order. Every proxied request runs these stages and no others:
///
/// | stage        | what it does                                                     | where                       |
/// |--------------|------------------------------------------------------------------|-----------------------------|
/// | authenticate | virtual key → tenant, or 401/403 (a middleware, before this type)| ``TenantAuthentication``    |
/// | read body    | bounded read, 413 above the configured limit                     | here                        |
/// | parse        | model, stream flag, max output                                   | `RequestParser`             |
/// | route        | public model → provider, upstream model, tokenizer, price        | `GatewayConfig`, `PriceBook`|
/// | estimate     | exact prompt tokens (or a calibrated estimate), price in force   | `PromptCounter`             |
/// | admit        | plan, rate limits, free quota then budget: reserve or 429        | ``PolicyService``           |
/// | forward      | send upstream, retrying and falling back before the first byte   | `forward` (Forwarding.swift)|
/// | meter        | every relayed byte: upstream usage and local completion counts   | `ResponseMeter`             |
/// | settle       | billed usage and exact cost; free, then grant, then budget       | `BillingDraft.finalRecord`, `PolicyEngine.settle` |
/// | record       | durable record before the response's last byte                   | ``BillingRecorder``         |
///
/// Meter, settle and record run inside ``ResponseRelay`` as the body streams. A request refused after
/// authentication is recorded as `rejected` at zero cost; one that reached the forward stage always
/// leaves exactly one record, whatever happened to it.
public struct RequestPipeline: Sendable {
    let config: GatewayConfig
    let upstreams: UpstreamClients
    /// The transport for providers of kind `mock`, if this build has one.
    let mockTransport: (any UpstreamTransport)?
    let tokenizers: [String: ModelTokenizer]
    let promptCache: TokenCountCache
    let recorder: BillingRecorder
    let storeHealth: StoreHealth
    let relay: ResponseRelay
    let policy: PolicyService
    let metrics: GatewayMetrics
    let logger: Logger
    /// Provider key pools and circuit breakers.
    let health: ProviderHealth
    /// How long a request may spend on retries and fallbacks before its answer starts.
    let retryDeadline: Duration = .seconds(30)

    init(
        policies: Policies, keys: KeyDirectory, upstreams: UpstreamClients, mockTransport: (any UpstreamTransport)?,
        ledger: any Ledger, storeHealth: StoreHealth = StoreHealth(), policy: PolicyService, metrics: GatewayMetrics,
        health: ProviderHealth? = nil, logger: Logger
    ) throws {
        self.health = health ?? ProviderHealth(config: policies.gateway, environment: [:])
        self.storeHealth = storeHealth
        self.mockTransport = mockTransport
        self.config = policies.gateway
        self.upstreams = upstreams
        var tokenizers: [String: ModelTokenizer] = [:]
        for route in config.models {
            tokenizers[route.name] = try ModelTokenizer.resolve(
                upstreamModel: route.upstreamModel, configuredEncoding: route.tokenizer,
                calibrationPerMille: route.calibrationPerMille)
        }
        self.tokenizers = tokenizers
        self.promptCache = TokenCountCache()
        self.policy = policy
        self.recorder = BillingRecorder(ledger: ledger, policy: policy, metrics: metrics, logger: logger)
        self.relay = ResponseRelay(metrics: metrics)
        self.metrics = metrics
        self.logger = logger
    }

    /// A proxied request of a tenant whose key ``TenantAuthentication`` accepted.
    func handle(_ endpoint: APIEndpoint, request: Request, context: TenantRequestContext) async -> Response {
        let key = context.key
        // Nothing is admitted that could not be recorded; nor is this refusal (the store is the problem).
        guard storeHealth.isAvailable else {
            return GatewayError.storeUnavailable.response(dialect: endpoint.dialect, requestID: context.requestID)
        }
        var draft = BillingDraft(
            requestID: context.requestID, tenantID: key.tenantID, keyID: key.keyID, startedAt: Date(),
            endpoint: endpoint.rawValue)
        do {
            return try await run(endpoint, request: request, key: key, draft: &draft, context: context)
        } catch {
            if !error.isRecorded { await recordRejected(draft, error) }
            return error.response(dialect: endpoint.dialect, requestID: context.requestID)
        }
    }

    /// A known key refused before its request was parsed (a suspended tenant), on any tenant route.
    func recordRefusal(_ key: AuthenticatedKey, path: String, requestID: String, error: GatewayError) async {
        let draft = BillingDraft(
            requestID: requestID, tenantID: key.tenantID, keyID: key.keyID, startedAt: Date(), endpoint: path)
        await recordRejected(draft, error)
    }

    private func recordRejected(_ draft: BillingDraft, _ error: GatewayError) async {
        var draft = draft
        // A rejected record keeps a model name only if it is a configured one: junk names from a hostile
        // client would otherwise each become a row of the tenant's usage.
        if config.modelsByName[draft.model] == nil { draft.model = "" }
        await recorder.recordBestEffort(
            draft.rejected(
                httpStatus: error.statusCode, error: error.code ?? error.openAIType ?? "invalid_request", at: Date()),
            reservation: nil)
    }

    private func run(
        _ endpoint: APIEndpoint, request: Request, key: AuthenticatedKey, draft: inout BillingDraft,
        context: TenantRequestContext
    ) async throws(GatewayError) -> Response {
        // read body
        let body = try await readBody(request)

        // parse
        let parsed: ParsedRequest
        do {
            parsed = try RequestParser.parse(endpoint: endpoint, body: body)
        } catch {
            throw GatewayError.badRequest(error)
        }
        draft.model = parsed.model
        draft.stream = parsed.stream

        // route
        guard let (route, provider) = config.route(forModel: parsed.model), let tokenizer = tokenizers[route.name]
        else {
            throw GatewayError.unknownModel(parsed.model)
        }
        if endpoint == .messages && provider.kind == .openai {
            throw GatewayError(
                status: 400,
                message: "The model '\(parsed.model)' is served over the OpenAI API; call /v1/chat/completions.",
                openAIType: "invalid_request_error", code: "wrong_api_for_model", param: "model")
        }
        if endpoint != .messages && provider.kind == .anthropic {
            throw GatewayError(
                status: 400,
                message: "The model '\(parsed.model)' is served over the Anthropic Messages API; call /v1/messages.",
                openAIType: "invalid_request_error", code: "wrong_api_for_model", param: "model")
        }
        if let asked = parsed.maxOutputTokens, asked > route.maxOutputTokens {
            throw GatewayError.maxOutputTooLarge(
                asked: asked, cap: route.maxOutputTokens, model: route.name, param: parsed.maxOutputParam)
        }
        draft.upstreamModel = route.upstreamModel
        draft.provider = provider.name
        draft.price = policy.price(for: route.priceID, at: draft.startedAt)

        // estimate
        let clock = ContinuousClock()
        let countStart = clock.now
        draft.prompt = PromptCounter(tokenizer: tokenizer, cache: promptCache).count(
            endpoint: endpoint, json: parsed.json)
        metrics.tokenizerTime(clock.now - countStart)
        let tenantContext = policy.context(for: key.tenant, key: key.key)
        let plan = tenantContext.plan
        let steps = steps(
            ForwardStep(
                route: route, provider: provider, tokenizer: tokenizer, prompt: draft.prompt, price: draft.price),
            endpoint: endpoint, parsed: parsed, plan: plan, startedAt: draft.startedAt)

        // admit
        // The output each answer may reach: what the request asks (checked against the model's cap
        // above), else the plan's cap or the default, never above the model's cap. Both factors are
        // bounded (10^7 tokens, 128 answers), so the product fits.
        let outputLimit =
            parsed.maxOutputTokens ?? min(plan.maxOutputTokens ?? PolicyService.defaultMaxOutput, route.maxOutputTokens)
        let maxOutput = endpoint == .embeddings ? 0 : outputLimit * parsed.choices
        // With fallbacks, the reservation is for the dearest model the chain may reach, so whichever
        // serves is covered; the record is billed at the one that served.
        let reserveFor = steps.count > 1 ? dearest(steps, completion: maxOutput, at: draft.startedAt) : steps[0]
        let admission: Admission
        do {
            admission = try await policy.admit(
                tenantContext,
                AdmissionRequest(
                    model: parsed.model,
                    estimate: Usage(
                        prompt: steps.map(\.prompt.tokens).max() ?? draft.prompt.tokens, completion: maxOutput),
                    requestedMaxOutput: parsed.maxOutputTokens, price: reserveFor.price, now: draft.startedAt,
                    admittedAt: Date()))
        } catch {
            // The shared store went away between the health check and the admission.
            throw GatewayError.storeUnavailable
        }
        var rateHeaders = HTTPFields()
        switch admission {
        case .rejected(let rejection):
            throw GatewayError.rejected(rejection)
        case .admitted(let reservation, let status):
            draft.reservation = reservation
            if let status { rateHeaders = GatewayError.rateLimitHeaders(status) }
        }
        // From here on the owner settles the request, whatever happens to it or its client.
        let owner = SettlementOwner(draft: draft, recorder: recorder)
        context.connection?.attach(owner)

        // forward (with retries and fallbacks, before any byte goes to the client)
        let forwarded = await forward(
            steps, endpoint: endpoint, parsed: parsed, clientHeaders: request.headers, outputLimit: outputLimit,
            owner: owner, eventLoop: context.connection?.channel.eventLoop)
        if owner.isClientGone {
            await owner.finishBestEffort(owner.clientGoneRecord(upstreamStatus: nil, meter: nil))
            throw GatewayError.clientGone.recorded()
        }
        switch forwarded {
        case .failed(let error, let step):
            logger.warning(
                "upstream failed", metadata: ["provider": "\(step.provider.name)", "request_id": "\(draft.requestID)"])
            let failure = GatewayError.upstream(error)
            let timedOut = failure.code == "upstream_timeout"
            // The last attempt is the record's own; the ones before it stay as failed attempts.
            var final = owner.draft
            if !final.failedAttempts.isEmpty { final.failedAttempts.removeLast() }
            final.attempts = max(1, final.failedAttempts.count + 1)
            owner.draft = final
            await owner.finishBestEffort(
                final.finalRecord(
                    status: timedOut ? .upstreamTimeout : .upstreamUnavailable, httpStatus: failure.statusCode,
                    upstreamStatus: nil, error: failure.code, meter: nil, endedAt: Date(), firstByteAt: nil))
            throw failure.recorded()
        case .answered(let upstream, let step, _):
            // meter → settle → record, as the response streams
            return try await relay.relay(
                upstream, owner: owner,
                metering: .init(
                    endpoint: endpoint, encoding: step.tokenizer.encoding,
                    injectedUsage: parsed.needsInjectedUsage && step.provider.kind != .anthropic,
                    idleTimeout: .milliseconds(step.provider.timeouts.idleReadMilliseconds)),
                dialect: endpoint.dialect, client: context.connection?.channel, extraHeaders: rateHeaders)
        }
    }

    func transport(for provider: ProviderConfig) throws(UpstreamFailure) -> any UpstreamTransport {
        guard provider.kind == .mock else { return upstreams }
        guard let mockTransport else {
            throw .notConfigured(provider: provider.name, detail: "this build has no mock provider")
        }
        return mockTransport
    }

    private func readBody(_ request: Request) async throws(GatewayError) -> [UInt8] {
        let limit = config.server.maxRequestBodyBytes
        if let length = request.headers.combined(.contentLength).flatMap(Int.init), length > limit {
            throw GatewayError.tooLarge(limit: limit)
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw GatewayError.tooLarge(limit: limit)
        } catch {
            throw GatewayError(status: 400, message: "The request body could not be read.")
        }
    }

    /// `GET /v1/models`: the models this key may use (its plan's allow-list, when it has one).
    func listModels(request: Request, context: TenantRequestContext) -> Response {
        let key = context.key
        let allowed = policy.context(for: key.tenant, key: key.key).plan.allowedModels
        let data: [JSONValue] = config.models.filter { allowed?.contains($0.name) ?? true }.map { model in
            .object([
                ("id", .string(model.name)), ("object", "model"), ("created", 0), ("owned_by", .string(model.provider)),
            ])
        }
        return JSONResponse.make(
            200, .object([("object", "list"), ("data", .array(data))]), requestID: context.requestID)
    }
}
