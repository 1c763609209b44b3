import Foundation

/// One request's bill: who, what, when, how much was used, where the counts came from, and what it cost.
///
/// Every request that reached the forward stage leaves exactly one record, and so does every request the
/// gateway refused after it knew the tenant (status `rejected`, zero cost). Token columns hold the billed
/// usage; the local counts sit beside them for audit, whichever source was billed.
public struct BillingRecord: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// The upstream answered 2xx and the whole response reached the client.
        case completed
        /// The upstream answered with an error status (relayed 4xx, or 5xx turned into 502).
        case upstreamError = "upstream_error"
        /// The upstream stream broke after the response had started.
        case upstreamCut = "upstream_cut"
        /// No response headers within the provider's timeouts (504).
        case upstreamTimeout = "upstream_timeout"
        /// The upstream could not be reached, or has no key configured (502/503).
        case upstreamUnavailable = "upstream_unavailable"
        /// The client went away before the response completed; the upstream request was stopped.
        case clientDisconnected = "client_disconnected"
        /// Refused by the gateway before forwarding (bad request, unknown model, policy).
        case rejected
    }

    public enum UsageSource: String, Sendable, CaseIterable {
        /// The provider's own usage report.
        case upstream
        /// The built-in tokenizer: prompt from the estimate, completion from the streamed deltas.
        case tokenizer
        /// Prompt side reported by the upstream, completion counted locally (a stream cut after Anthropic's
        /// `message_start`, for example).
        case mixed = "upstream+tokenizer"
        /// Nothing billable: refused, or the upstream failed.
        case none
    }

    public var id: String
    /// The `x-request-id` the client received.
    public var requestID: String
    public var tenantID: String
    public var keyID: String
    public var startedAt: Date
    public var endedAt: Date
    /// Milliseconds from the start to the first response byte relayed to the client.
    public var timeToFirstTokenMs: Int?
    /// The client-facing path, such as `/v1/chat/completions`.
    public var endpoint: String
    public var model: String
    public var upstreamModel: String
    public var provider: String
    public var stream: Bool
    public var status: Status
    /// The status code the client received.
    public var httpStatus: Int
    /// A short error code for anything but `completed` (`insufficient_quota`, `upstream_timeout`, …).
    public var error: String?
    /// The billed usage.
    public var usage: Usage
    public var usageSource: UsageSource
    public var localPromptTokens: Int
    public var localCompletionTokens: Int
    /// Whether the local counts come from an estimate encoding (models without a public tokenizer).
    public var localIsEstimate: Bool
    /// The price entry in force at `startedAt` (`<price id>@<effective instant>`); nil when unpriced.
    public var priceEntry: String?
    /// Exact cost in the entry's currency; nil when unpriced.
    public var cost: Money?
    /// What the admit stage reserved: prompt tokens plus the most output the request could produce,
    /// and their price. The difference from the billed usage is the estimate error.
    public var estimatedTokens = 0
    public var estimatedCost: Money?
    /// Units drawn from the periodic free quota and from the one-off grant (tokens, or nano-units of the
    /// quota's credit currency).
    public var freeUnits: Int64 = 0
    public var grantUnits: Int64 = 0
    /// The cost split: `freeCost + charged == cost`.
    public var freeCost: Money?
    public var charged: Money?
    /// `charged` as counted against the tenant's budget, in the budget's currency.
    public var budgetCharge: Money?
    /// Upstream attempts this request made (retries and fallbacks included); the last one served it.
    public var attempts = 1
    /// The provider key that served it (its configured name, never the key), when a pool has several.
    public var upstreamKeyID: String?
    /// The attempts that failed before the one that served, for reconciling with the provider's invoice.
    public var failedAttempts: [UpstreamAttempt] = []

    public init(
        id: String, requestID: String, tenantID: String, keyID: String, startedAt: Date, endedAt: Date,
        timeToFirstTokenMs: Int?, endpoint: String, model: String, upstreamModel: String, provider: String,
        stream: Bool, status: Status, httpStatus: Int, error: String?, usage: Usage, usageSource: UsageSource,
        localPromptTokens: Int, localCompletionTokens: Int, localIsEstimate: Bool, priceEntry: String?,
        cost: Money?
    ) {
        self.id = id
        self.requestID = requestID
        self.tenantID = tenantID
        self.keyID = keyID
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.timeToFirstTokenMs = timeToFirstTokenMs
        self.endpoint = endpoint
        self.model = model
        self.upstreamModel = upstreamModel
        self.provider = provider
        self.stream = stream
        self.status = status
        self.httpStatus = httpStatus
        self.error = error
        self.usage = usage
        self.usageSource = usageSource
        self.localPromptTokens = localPromptTokens
        self.localCompletionTokens = localCompletionTokens
        self.localIsEstimate = localIsEstimate
        self.priceEntry = priceEntry
        self.cost = cost
    }

    /// A fresh record id: `rec_` and 32 hex digits, a per-process nonce and a counter
    /// (see ``ProcessUniqueIDs``).
    public static func newID() -> String { ids.next() }

    private static let ids = ProcessUniqueIDs(tag: "rec_", counterDigits: 16)
}

/// One upstream attempt of a request that was retried or fell back.
public struct UpstreamAttempt: Sendable, Equatable {
    public var provider: String
    public var upstreamModel: String
    public var keyID: String?
    /// The upstream's status, or nil when it did not answer (connect error, timeout).
    public var status: Int?
    public var latencyMs: Int
    public var error: String
    /// Usage the upstream reported on its error answer, if any.
    public var promptTokens: Int?
    public var completionTokens: Int?

    public init(
        provider: String, upstreamModel: String, keyID: String?, status: Int?, latencyMs: Int, error: String,
        promptTokens: Int? = nil, completionTokens: Int? = nil
    ) {
        self.provider = provider
        self.upstreamModel = upstreamModel
        self.keyID = keyID
        self.status = status
        self.latencyMs = latencyMs
        self.error = error
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
    }

    /// The failed attempts as one JSON array (the ledger keeps them beside their record, in its row).
    public static func encode(_ attempts: [UpstreamAttempt]) -> String? {
        guard !attempts.isEmpty else { return nil }
        return JSONWriter.serialize(
            .array(
                attempts.map { a in
                    .object([
                        ("provider", .string(a.provider)), ("upstream_model", .string(a.upstreamModel)),
                        ("key_id", a.keyID.map(JSONValue.string) ?? .null),
                        ("status", a.status.map(JSONValue.int) ?? .null), ("latency_ms", .int(a.latencyMs)),
                        ("error", .string(a.error)), ("prompt_tokens", a.promptTokens.map(JSONValue.int) ?? .null),
                        ("completion_tokens", a.completionTokens.map(JSONValue.int) ?? .null),
                    ])
                }))
    }

    public static func decode(_ text: String?) -> [UpstreamAttempt] {
        guard let text, let json = try? JSONReader.parse(Array(text.utf8)), case .array(let items) = json else {
            return []
        }
        return items.compactMap { item in
            guard case .string(let provider)? = item["provider"], case .string(let model)? = item["upstream_model"]
            else { return nil }
            func int(_ name: String) -> Int? {
                if case .number(let n)? = item[name] { return Int(n) }
                return nil
            }
            var key: String?
            if case .string(let k)? = item["key_id"] { key = k }
            var error = ""
            if case .string(let e)? = item["error"] { error = e }
            return UpstreamAttempt(
                provider: provider, upstreamModel: model, keyID: key, status: int("status"),
                latencyMs: int("latency_ms") ?? 0, error: error, promptTokens: int("prompt_tokens"),
                completionTokens: int("completion_tokens"))
        }
    }
}
