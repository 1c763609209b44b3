import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// A model that may serve a request: the one asked for, or one of its fallbacks, with what serving it
/// would mean (its provider, tokenizer, prompt count and price).
struct ForwardStep: Sendable {
    var route: ModelRoute
    var provider: ProviderConfig
    var tokenizer: ModelTokenizer
    var prompt: PromptCounter.Count
    var price: PriceEntry?
}

/// What the forward stage ends with: an answer to relay (2xx, or the last error once attempts are
/// spent), or the last transport failure when no attempt got an answer.
enum Forwarded: Sendable {
    case answered(UpstreamResponse, ForwardStep, ProviderHealth.Lease)
    case failed(UpstreamFailure, ForwardStep)
}

extension RequestPipeline {
    /// The requested model, then its fallbacks the tenant's plan allows (fallbacks on, model allowed, the
    /// same API, room for the asked output), each with its prompt count in its own tokenizer.
    func steps(
        _ first: ForwardStep, endpoint: APIEndpoint, parsed: ParsedRequest, plan: Plan, startedAt: Date
    ) -> [ForwardStep] {
        var steps = [first]
        guard plan.fallbacks else { return steps }
        let prices = policy.prices
        // A fallback whose cost cannot be compared with the first step's, or counted against the budget,
        // could serve unreserved or unbilled: such a step is left out. So is one the free quota does not
        // cover when the requested model's use would draw on it.
        func convertible(_ price: PriceEntry?) -> Bool {
            guard let price else { return first.price == nil }
            let unit = Money(nanos: 1_000_000_000, currency: price.currency)
            if let f = first.price, prices.convert(unit, to: f.currency, at: startedAt) == nil { return false }
            if let b = plan.budget, prices.convert(unit, to: b.limit.currency, at: startedAt) == nil { return false }
            return true
        }
        let freeCovers = plan.freeQuota.map { $0.applies(toModel: first.route.name) } ?? false
        for name in first.route.fallbacks {
            guard let (route, provider) = config.route(forModel: name), let tokenizer = tokenizers[route.name],
                plan.allowedModels?.contains(name) ?? true, (provider.kind == .anthropic) == (endpoint == .messages),
                (parsed.maxOutputTokens ?? 0) <= route.maxOutputTokens,
                !freeCovers || plan.freeQuota?.applies(toModel: name) == true
            else { continue }
            let price = policy.price(for: route.priceID, at: startedAt)
            guard convertible(price) else { continue }
            let prompt =
                tokenizer.encoding.name == first.tokenizer.encoding.name
                    && tokenizer.calibrationPerMille == first.tokenizer.calibrationPerMille
                    && tokenizer.isEstimate == first.tokenizer.isEstimate
                ? first.prompt
                : PromptCounter(tokenizer: tokenizer, cache: promptCache).count(endpoint: endpoint, json: parsed.json)
            steps.append(
                ForwardStep(route: route, provider: provider, tokenizer: tokenizer, prompt: prompt, price: price))
        }
        return steps
    }

    /// The step whose estimate costs most (in the first step's currency where the book converts), so
    /// the reservation covers whichever model ends up serving.
    func dearest(_ steps: [ForwardStep], completion: Int, at instant: Date) -> ForwardStep {
        let prices = policy.prices
        var best = steps[0]
        var bestCost: Money? = best.price.flatMap {
            try? $0.cost(of: Usage(prompt: best.prompt.tokens, completion: completion))
        }
        for step in steps.dropFirst() {
            guard let price = step.price,
                let cost = try? price.cost(of: Usage(prompt: step.prompt.tokens, completion: completion))
            else { continue }
            guard let current = bestCost else {
                (best, bestCost) = (step, cost)
                continue
            }
            guard let comparable = prices.convert(cost, to: current.currency, at: instant) else { continue }
            if comparable.nanos > current.nanos { (best, bestCost) = (step, cost) }
        }
        return best
    }

    /// Sends the request, retrying and falling back before any byte went to the client: connect errors,
    /// 429 and 5xx (Anthropic's 529 included) are retried with backoff and jitter, no sooner than the
    /// upstream's `Retry-After` or rate-limit reset, within the first step's attempt limit and
    /// `retryDeadline`. A provider that cannot be reached, or whose circuit is open, gives way to the next
    /// step at once (an open circuit is skipped only when there is a next step); a step that keeps failing
    /// gives way after two attempts. Each failed attempt goes into
    /// the owner's draft (the record keeps it); the step that answers becomes the draft's model.
    func forward(
        _ steps: [ForwardStep], endpoint: APIEndpoint, parsed: ParsedRequest, clientHeaders: HTTPFields,
        outputLimit: Int, owner: SettlementOwner, eventLoop: (any EventLoop)?
    ) async -> Forwarded {
        let clock = ContinuousClock()
        let deadline = clock.now + retryDeadline
        var attemptsLeft = steps[0].route.maxAttempts
        var failure: (UpstreamFailure, ForwardStep)?
        stepLoop: for (index, step) in steps.enumerated() {
            let isLast = index == steps.count - 1
            var onStep = 0
            // Every attempt after the first starts within the deadline: a timeout is not retried past it.
            while attemptsLeft > 0 && !owner.isClientGone
                && (attemptsLeft == steps[0].route.maxAttempts || clock.now < deadline)
            {
                guard let lease = health.acquire(step.provider.name, circuit: !isLast) else {
                    failure = (
                        .unreachable(provider: step.provider.name, detail: "circuit open or no usable key"), step
                    )
                    continue stepLoop
                }
                attemptsLeft -= 1
                onStep += 1
                serve(step, lease: lease, owner: owner)
                let started = clock.now
                let request = upstreamRequest(
                    step, endpoint: endpoint, parsed: parsed, clientHeaders: clientHeaders, outputLimit: outputLimit,
                    owner: owner, lease: lease, eventLoop: eventLoop)
                let response: UpstreamResponse
                do throws(UpstreamFailure) {
                    if lease.key == nil, let reason = health.missing[step.provider.name] {
                        throw UpstreamFailure.notConfigured(provider: step.provider.name, detail: reason)
                    }
                    response = try await transport(for: step.provider).send(request, cancellation: owner.cancellation)
                } catch let error {
                    // A client that left cancels its own request, and a missing key is the operator's: neither
                    // says anything about the provider.
                    var providerFailed = !owner.isClientGone
                    if case .notConfigured = error { providerFailed = false }
                    health.finish(lease, status: nil, headers: [], failed: providerFailed)
                    failure = (error, step)
                    let code = GatewayError.upstream(error).code ?? "upstream_unavailable"
                    attempt(step, lease, status: nil, since: started, error: code, owner: owner)
                    metrics.upstreamError(
                        provider: step.provider.name, kind: code == "upstream_timeout" ? "timeout" : "unavailable")
                    // Unreachable: the next model, if any; else wait and try this one again.
                    if !isLast { continue stepLoop }
                    guard attemptsLeft > 0, await pause(backoff(onStep), until: deadline, clock: clock, owner: owner)
                    else {
                        break stepLoop
                    }
                    continue
                }
                let status = response.status
                let retryable = status == 429 || status >= 500
                health.finish(lease, status: status, headers: response.headers, failed: status >= 500)
                guard retryable, attemptsLeft > 0, !owner.isClientGone else { return .answered(response, step, lease) }
                // A pool's other key can take a 429 at once; otherwise the upstream's reset or a backoff.
                let wait: Duration =
                    status == 429 && health.usableKeyCount(step.provider.name) > 0
                    ? .zero
                    : ProviderHealth.resetSeconds(response.headers).map { .milliseconds(Int64($0 * 1000)) }
                        ?? backoff(onStep)
                let canWait = clock.now + wait < deadline
                let moveOn = !isLast && (onStep >= 2 || !canWait)
                guard canWait || moveOn else { return .answered(response, step, lease) }
                response.body.abandon()
                attempt(step, lease, status: status, since: started, error: "upstream_\(status)", owner: owner)
                if moveOn { continue stepLoop }
                guard await pause(wait, until: deadline, clock: clock, owner: owner) else { break stepLoop }
            }
            break
        }
        return .failed(
            failure?.0 ?? .unreachable(provider: steps[0].provider.name, detail: "no attempt was possible"),
            failure?.1 ?? steps[0])
    }

    /// The draft now describes `step` as the one serving (its model, price, prompt count and key).
    private func serve(_ step: ForwardStep, lease: ProviderHealth.Lease, owner: SettlementOwner) {
        var draft = owner.draft
        draft.model = step.route.name
        draft.upstreamModel = step.route.upstreamModel
        draft.provider = step.provider.name
        draft.price = step.price
        draft.prompt = step.prompt
        draft.upstreamKeyID = lease.key?.id
        draft.attempts = draft.failedAttempts.count + 1
        owner.draft = draft
    }

    private func attempt(
        _ step: ForwardStep, _ lease: ProviderHealth.Lease, status: Int?, since start: ContinuousClock.Instant,
        error: String, owner: SettlementOwner
    ) {
        let elapsed = ContinuousClock.now - start
        var draft = owner.draft
        draft.failedAttempts.append(
            UpstreamAttempt(
                provider: step.provider.name, upstreamModel: step.route.upstreamModel, keyID: lease.key?.id,
                status: status,
                latencyMs: Int(
                    elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000),
                error: error))
        draft.attempts = draft.failedAttempts.count
        owner.draft = draft
    }

    private func upstreamRequest(
        _ step: ForwardStep, endpoint: APIEndpoint, parsed: ParsedRequest, clientHeaders: HTTPFields, outputLimit: Int,
        owner: SettlementOwner, lease: ProviderHealth.Lease, eventLoop: (any EventLoop)?
    ) -> UpstreamRequest {
        let injectUsage = parsed.needsInjectedUsage && step.provider.kind != .anthropic
        // Without a limit of the client's own, the upstream gets the one the reservation was made for,
        // so actual output cannot exceed the estimate: a hard budget is overshot by prompt-count error
        // alone.
        let outputCap: (member: String, tokens: Int)? =
            owner.reservation?.limitsApply == true && parsed.maxOutputTokens == nil && endpoint != .embeddings
            ? step.provider.outputLimitMember(for: endpoint).map { ($0, min(outputLimit, step.route.maxOutputTokens)) }
            : nil
        var forwarded = parsed
        if injectUsage { forwarded.includeUsage = true }
        if let outputCap { forwarded.maxOutputTokens = outputCap.tokens }
        var request = UpstreamRequest(
            provider: step.provider, endpoint: endpoint, parsed: forwarded,
            body: parsed.upstreamBody(model: step.route.upstreamModel, requestUsage: injectUsage, outputCap: outputCap),
            clientHeaders: clientHeaders, requestID: owner.draft.requestID, eventLoop: eventLoop)
        request.apiKey = lease.key?.secret
        request.keyID = lease.key?.id
        return request
    }

    /// 100 ms doubling per attempt on the step, up to 2 s, with jitter over the upper half.
    private func backoff(_ attempt: Int) -> Duration {
        let base = min(2_000, 100 << min(max(attempt - 1, 0), 5))
        return .milliseconds(Int64(Double(base) * Double.random(in: 0.5...1)))
    }

    /// Sleeps `wait` unless that passes the deadline; false if it would, or if the client left meanwhile
    /// (its leaving ends the sleep, so its reservation and slot are not held for the rest of it).
    private func pause(
        _ wait: Duration, until deadline: ContinuousClock.Instant, clock: ContinuousClock, owner: SettlementOwner
    ) async -> Bool {
        guard clock.now + wait < deadline else { return false }
        let sleep = Task { try await Task.sleep(for: wait) }
        owner.onClientGone { sleep.cancel() }
        do {
            try await sleep.value
            return !owner.isClientGone
        } catch {
            return false
        }
    }
}
