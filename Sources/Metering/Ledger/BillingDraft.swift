import Foundation

/// What the pipeline knows about a request once it is routed and estimated; settlement turns it into
/// the request's one ``BillingRecord``.
public struct BillingDraft: Sendable {
    public var requestID: String
    public var tenantID: String
    public var keyID: String
    public var startedAt: Date
    public var endpoint: String
    public var model: String
    public var upstreamModel: String
    public var provider: String
    public var stream: Bool
    /// The estimate stage's prompt count.
    public var prompt: PromptCounter.Count
    /// The price in force at `startedAt`.
    public var price: PriceEntry?
    /// What the admit stage reserved for this request, if it was admitted.
    public var reservation: Reservation?
    /// Upstream attempts so far (the forward stage's retries and fallbacks), the key of the last one,
    /// and those that failed.
    public var attempts = 1
    public var upstreamKeyID: String?
    public var failedAttempts: [UpstreamAttempt] = []

    public init(
        requestID: String, tenantID: String, keyID: String, startedAt: Date, endpoint: String, model: String = "",
        upstreamModel: String = "", provider: String = "", stream: Bool = false,
        prompt: PromptCounter.Count = .init(tokens: 0, isEstimate: false), price: PriceEntry? = nil
    ) {
        self.requestID = requestID
        self.tenantID = tenantID
        self.keyID = keyID
        self.startedAt = startedAt
        self.endpoint = endpoint
        self.model = model
        self.upstreamModel = upstreamModel
        self.provider = provider
        self.stream = stream
        self.prompt = prompt
        self.price = price
    }

    /// The record of a request that reached the upstream.
    ///
    /// `meter` is nil when no response body was read (timeout, unreachable). Only a 2xx answer is
    /// billed: an upstream error costs nothing. Otherwise the upstream's report is billed when the
    /// response completed; when it was cut or the client left, whatever the upstream had reported is
    /// kept and the rest comes from the local counts (see ``BilledUsage``).
    public func finalRecord(
        status: BillingRecord.Status, httpStatus: Int, upstreamStatus: Int?, error: String? = nil,
        meter: UsageMeter?, endedAt: Date, firstByteAt: Date?
    ) -> BillingRecord {
        let localCompletion = meter?.localCompletionTokens ?? 0
        let billable = upstreamStatus.map { (200..<300).contains($0) } ?? false
        let (usage, source): (Usage, BillingRecord.UsageSource)
        if billable, let meter {
            (usage, source) = BilledUsage.choose(
                reported: meter.reported, completed: meter.completed, localPrompt: prompt.tokens,
                localCompletion: localCompletion)
        } else {
            (usage, source) = (Usage(), .none)
        }
        return record(
            status: status, httpStatus: httpStatus, error: error, usage: usage, source: source,
            localCompletion: localCompletion, endedAt: endedAt,
            firstByteAt: firstByteAt)
    }

    /// The record of a request the gateway refused before forwarding: zero usage, zero cost.
    public func rejected(httpStatus: Int, error: String, at instant: Date) -> BillingRecord {
        record(
            status: .rejected, httpStatus: httpStatus, error: error, usage: Usage(), source: .none,
            localCompletion: 0, endedAt: instant, firstByteAt: nil)
    }

    private func record(
        status: BillingRecord.Status, httpStatus: Int, error: String?, usage: Usage,
        source: BillingRecord.UsageSource, localCompletion: Int, endedAt: Date, firstByteAt: Date?
    ) -> BillingRecord {
        // Usage is bounded (each reported count by `Usage.maxReportedTokens`, local counts by the bytes
        // that arrived), so only an absurd price book overflows; such a record keeps its tokens, has no
        // cost and says why, rather than trapping.
        var cost: Money?
        var error = error
        if let price {
            cost = source == .none ? .zero(price.currency) : try? price.cost(of: usage)
            if cost == nil { error = "cost_overflow" }
        }
        var record = BillingRecord(
            id: BillingRecord.newID(), requestID: requestID, tenantID: tenantID, keyID: keyID, startedAt: startedAt,
            endedAt: endedAt,
            timeToFirstTokenMs: firstByteAt.map { Int(($0.timeIntervalSince(startedAt) * 1000).rounded()) },
            endpoint: endpoint, model: model, upstreamModel: upstreamModel, provider: provider, stream: stream,
            status: status, httpStatus: httpStatus, error: error, usage: usage, usageSource: source,
            localPromptTokens: prompt.tokens, localCompletionTokens: localCompletion,
            localIsEstimate: prompt.isEstimate, priceEntry: price?.id,
            cost: cost)
        record.estimatedTokens = reservation?.estimatedTokens ?? 0
        record.estimatedCost = reservation?.estimatedCost
        record.freeCost = record.cost.map { .zero($0.currency) }
        record.charged = record.cost
        record.attempts = attempts
        record.upstreamKeyID = upstreamKeyID
        record.failedAttempts = failedAttempts
        return record
    }
}
