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
    /// The fields, behind one reference: a record passes through many async calls, queues and
    /// closures on its way to the ledger, and copying its dozen strings at each cost more than
    /// building it. Copied on write.
    struct Fields: Sendable, Equatable {
        var id: String
        var requestID: String
        var tenantID: String
        var keyID: String
        var startedAt: Date
        var endedAt: Date
        var timeToFirstTokenMs: Int?
        var endpoint: String
        var model: String
        var upstreamModel: String
        var provider: String
        var stream: Bool
        var status: Status
        var httpStatus: Int
        var error: String?
        var usage: Usage
        var usageSource: UsageSource
        var localPromptTokens: Int
        var localCompletionTokens: Int
        var localIsEstimate: Bool
        var priceEntry: String?
        var cost: Money?
        var estimatedTokens: Int = 0
        var estimatedCost: Money?
        var freeUnits: Int64 = 0
        var grantUnits: Int64 = 0
        var freeCost: Money?
        var charged: Money?
        var budgetCharge: Money?
        var attempts: Int = 1
        var upstreamKeyID: String?
        var failedAttempts: [UpstreamAttempt] = []
    }

    final class Storage: @unchecked Sendable {
        // Never mutated while shared: `unique` copies it first. Its accesses are not checked at run
        // time: nothing here calls out while holding one, and a record's fields are read some forty
        // times a request (~3k instructions of checks).
        @exclusivity(unchecked) var fields: Fields

        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private var unique: Storage {
        mutating get {
            if !isKnownUniquelyReferenced(&storage) { storage = Storage(storage.fields) }
            return storage
        }
    }

    public static func == (lhs: BillingRecord, rhs: BillingRecord) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    public var id: String {
        get { storage.fields.id }
        _modify { yield &unique.fields.id }
    }
    /// The `x-request-id` the client received.
    public var requestID: String {
        get { storage.fields.requestID }
        _modify { yield &unique.fields.requestID }
    }
    public var tenantID: String {
        get { storage.fields.tenantID }
        _modify { yield &unique.fields.tenantID }
    }
    public var keyID: String {
        get { storage.fields.keyID }
        _modify { yield &unique.fields.keyID }
    }
    public var startedAt: Date {
        get { storage.fields.startedAt }
        _modify { yield &unique.fields.startedAt }
    }
    public var endedAt: Date {
        get { storage.fields.endedAt }
        _modify { yield &unique.fields.endedAt }
    }
    /// Milliseconds from the start to the first response byte relayed to the client.
    public var timeToFirstTokenMs: Int? {
        get { storage.fields.timeToFirstTokenMs }
        _modify { yield &unique.fields.timeToFirstTokenMs }
    }
    /// The client-facing path, such as `/v1/chat/completions`.
    public var endpoint: String {
        get { storage.fields.endpoint }
        _modify { yield &unique.fields.endpoint }
    }
    public var model: String {
        get { storage.fields.model }
        _modify { yield &unique.fields.model }
    }
    public var upstreamModel: String {
        get { storage.fields.upstreamModel }
        _modify { yield &unique.fields.upstreamModel }
    }
    public var provider: String {
        get { storage.fields.provider }
        _modify { yield &unique.fields.provider }
    }
    public var stream: Bool {
        get { storage.fields.stream }
        _modify { yield &unique.fields.stream }
    }
    public var status: Status {
        get { storage.fields.status }
        _modify { yield &unique.fields.status }
    }
    /// The status code the client received.
    public var httpStatus: Int {
        get { storage.fields.httpStatus }
        _modify { yield &unique.fields.httpStatus }
    }
    /// A short error code for anything but `completed` (`insufficient_quota`, `upstream_timeout`, …).
    public var error: String? {
        get { storage.fields.error }
        _modify { yield &unique.fields.error }
    }
    /// The billed usage.
    public var usage: Usage {
        get { storage.fields.usage }
        _modify { yield &unique.fields.usage }
    }
    public var usageSource: UsageSource {
        get { storage.fields.usageSource }
        _modify { yield &unique.fields.usageSource }
    }
    public var localPromptTokens: Int {
        get { storage.fields.localPromptTokens }
        _modify { yield &unique.fields.localPromptTokens }
    }
    public var localCompletionTokens: Int {
        get { storage.fields.localCompletionTokens }
        _modify { yield &unique.fields.localCompletionTokens }
    }
    /// Whether the local counts come from an estimate encoding (models without a public tokenizer).
    public var localIsEstimate: Bool {
        get { storage.fields.localIsEstimate }
        _modify { yield &unique.fields.localIsEstimate }
    }
    /// The price entry in force at `startedAt` (`<price id>@<effective instant>`); nil when unpriced.
    public var priceEntry: String? {
        get { storage.fields.priceEntry }
        _modify { yield &unique.fields.priceEntry }
    }
    /// Exact cost in the entry's currency; nil when unpriced.
    public var cost: Money? {
        get { storage.fields.cost }
        _modify { yield &unique.fields.cost }
    }
    /// What the admit stage reserved: prompt tokens plus the most output the request could produce,
    /// and their price. The difference from the billed usage is the estimate error.
    public var estimatedTokens: Int {
        get { storage.fields.estimatedTokens }
        _modify { yield &unique.fields.estimatedTokens }
    }
    public var estimatedCost: Money? {
        get { storage.fields.estimatedCost }
        _modify { yield &unique.fields.estimatedCost }
    }
    /// Units drawn from the periodic free quota and from the one-off grant (tokens, or nano-units of the
    /// quota's credit currency).
    public var freeUnits: Int64 {
        get { storage.fields.freeUnits }
        _modify { yield &unique.fields.freeUnits }
    }
    public var grantUnits: Int64 {
        get { storage.fields.grantUnits }
        _modify { yield &unique.fields.grantUnits }
    }
    /// The cost split: `freeCost + charged == cost`.
    public var freeCost: Money? {
        get { storage.fields.freeCost }
        _modify { yield &unique.fields.freeCost }
    }
    public var charged: Money? {
        get { storage.fields.charged }
        _modify { yield &unique.fields.charged }
    }
    /// `charged` as counted against the tenant's budget, in the budget's currency.
    public var budgetCharge: Money? {
        get { storage.fields.budgetCharge }
        _modify { yield &unique.fields.budgetCharge }
    }
    /// Upstream attempts this request made (retries and fallbacks included); the last one served it.
    public var attempts: Int {
        get { storage.fields.attempts }
        _modify { yield &unique.fields.attempts }
    }
    /// The provider key that served it (its configured name, never the key), when a pool has several.
    public var upstreamKeyID: String? {
        get { storage.fields.upstreamKeyID }
        _modify { yield &unique.fields.upstreamKeyID }
    }
    /// The attempts that failed before the one that served, for reconciling with the provider's invoice.
    public var failedAttempts: [UpstreamAttempt] {
        get { storage.fields.failedAttempts }
        _modify { yield &unique.fields.failedAttempts }
    }

    public init(
        id: String, requestID: String, tenantID: String, keyID: String, startedAt: Date, endedAt: Date,
        timeToFirstTokenMs: Int?, endpoint: String, model: String, upstreamModel: String, provider: String,
        stream: Bool, status: Status, httpStatus: Int, error: String?, usage: Usage, usageSource: UsageSource,
        localPromptTokens: Int, localCompletionTokens: Int, localIsEstimate: Bool, priceEntry: String?,
        cost: Money?
    ) {
        storage = Storage(
            Fields(
                id: id, requestID: requestID, tenantID: tenantID, keyID: keyID, startedAt: startedAt, endedAt: endedAt,
                timeToFirstTokenMs: timeToFirstTokenMs, endpoint: endpoint, model: model, upstreamModel: upstreamModel,
                provider: provider, stream: stream, status: status, httpStatus: httpStatus, error: error, usage: usage,
                usageSource: usageSource, localPromptTokens: localPromptTokens,
                localCompletionTokens: localCompletionTokens, localIsEstimate: localIsEstimate, priceEntry: priceEntry,
                cost: cost))
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
