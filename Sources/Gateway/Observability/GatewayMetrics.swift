import Foundation
import Metering
import Prometheus
import Synchronization

/// The Prometheus series served at `/metrics`.
///
/// Labels are provider, model and status, never tenant or key: tenants are unbounded, and per-tenant
/// numbers live in the ledger, where they are exact.
public final class GatewayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]
    static let fastBuckets: [Duration] = [
        .microseconds(10), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
    ]

    private let tokenizer: DurationHistogram
    private let commitLatency: DurationHistogram
    private let commitBatch: ValueHistogram
    private let queueDepth: Gauge
    private let outstanding: Gauge

    public init() {
        tokenizer = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "gateway", metricName: "tokenizer", unitName: "seconds",
                helpText: "Time the estimate stage spends counting a prompt."),
            labels: [], buckets: Self.fastBuckets)
        commitLatency = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "gateway", metricName: "ledger_commit", unitName: "seconds",
                helpText: "Time of one ledger group commit."),
            labels: [], buckets: Self.fastBuckets)
        commitBatch = registry.makeValueHistogram(
            descriptor: .init(
                namespace: "gateway", metricName: "ledger_commit_batch", unitName: "records",
                helpText: "Records written by one ledger group commit."),
            labels: [], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
        queueDepth = registry.makeGauge(
            descriptor: .init(
                namespace: "gateway", metricName: "ledger_queue_depth", unitName: "records",
                helpText: "Records waiting for the next ledger commit."),
            labels: [])
        outstanding = registry.makeGauge(
            descriptor: .init(
                namespace: "gateway", metricName: "reservations_outstanding", unitName: "requests",
                helpText: "Requests admitted and not yet settled."),
            labels: [])
    }

    /// Counts a settled request: requests, tokens, cost, latency and time to first token.
    public func recorded(_ r: BillingRecord) {
        let status = statusSeries(provider: r.provider, model: r.model, status: r.status)
        status.requests.increment()
        guard let duration = status.duration else { return }
        duration.record(.milliseconds(Int64((r.endedAt.timeIntervalSince(r.startedAt) * 1000).rounded())))
        let model = modelSeries(provider: r.provider, model: r.model)
        if r.usage.prompt > 0 { model.promptTokens.increment(by: Int64(r.usage.prompt)) }
        if r.usage.completion > 0 { model.completionTokens.increment(by: Int64(r.usage.completion)) }
        if let ttft = r.timeToFirstTokenMs { model.timeToFirstToken.record(.milliseconds(ttft)) }
        if let cost = r.cost, cost.nanos > 0 {
            costCounter(provider: r.provider, model: r.model, currency: cost.currency).increment(by: cost.nanos)
        }
    }

    // The series a settled request updates, made on first use and kept: a registry lookup hashes the
    // descriptor and every label under a lock, several times per request. Models come from the config
    // and statuses from a fixed set, so these maps stay small.

    private struct StatusKey: Hashable {
        var provider: String
        var model: String
        var status: BillingRecord.Status
    }
    private struct StatusSeries: Sendable {
        let requests: Counter
        /// Not for rejected requests, which never started.
        let duration: DurationHistogram?
    }
    private struct ModelKey: Hashable {
        var provider: String
        var model: String
    }
    private struct ModelSeries: Sendable {
        let promptTokens: Counter
        let completionTokens: Counter
        let timeToFirstToken: DurationHistogram
    }
    private struct CostKey: Hashable {
        var provider: String
        var model: String
        var currency: String
    }
    private let byStatus = Mutex<[StatusKey: StatusSeries]>([:])
    private let byModel = Mutex<[ModelKey: ModelSeries]>([:])
    private let byCurrency = Mutex<[CostKey: Counter]>([:])

    private func statusSeries(provider: String, model: String, status: BillingRecord.Status) -> StatusSeries {
        Self.cached(in: byStatus, StatusKey(provider: provider, model: model, status: status)) {
            let labels = [("provider", provider), ("model", model), ("status", status.rawValue)]
            return StatusSeries(
                requests: registry.makeCounter(
                    descriptor: .init(
                        namespace: "gateway", metricName: "requests", unitName: "total",
                        helpText: "Requests by provider, model and billing status."),
                    labels: labels),
                duration: status == .rejected
                    ? nil : latencyHistogram("request_duration", "Request duration, start to last byte.", labels))
        }
    }

    private func modelSeries(provider: String, model: String) -> ModelSeries {
        Self.cached(in: byModel, ModelKey(provider: provider, model: model)) {
            let labels = [("provider", provider), ("model", model)]
            func tokens(_ kind: String) -> Counter {
                registry.makeCounter(
                    descriptor: .init(
                        namespace: "gateway", metricName: "tokens", unitName: "total",
                        helpText: "Billed tokens by provider, model and kind."),
                    labels: labels + [("kind", kind)])
            }
            return ModelSeries(
                promptTokens: tokens("prompt"), completionTokens: tokens("completion"),
                timeToFirstToken: latencyHistogram(
                    "time_to_first_token", "Time from the request's start to the first relayed response byte.",
                    labels))
        }
    }

    private func costCounter(provider: String, model: String, currency: String) -> Counter {
        Self.cached(in: byCurrency, CostKey(provider: provider, model: model, currency: currency)) {
            registry.makeCounter(
                descriptor: .init(
                    namespace: "gateway", metricName: "cost_nanos", unitName: "total",
                    helpText: "Billed cost in nano-units of the currency (exact integers)."),
                labels: [("provider", provider), ("model", model), ("currency", currency)])
        }
    }

    private func latencyHistogram(_ name: String, _ help: String, _ labels: [(String, String)]) -> DurationHistogram {
        registry.makeDurationHistogram(
            descriptor: .init(namespace: "gateway", metricName: name, unitName: "seconds", helpText: help),
            labels: labels, buckets: Self.latencyBuckets)
    }

    /// The value for `key`, made by `make` the first time. Two threads may both make one; the registry
    /// returns the same series for the same name and labels, so either result is the right one.
    private static func cached<Key: Hashable & Sendable, Value: Sendable>(
        in map: borrowing Mutex<[Key: Value]>, _ key: Key, make: () -> Value
    ) -> Value {
        if let found = map.withLock({ $0[key] }) { return found }
        let made = make()
        map.withLock { $0[key] = made }
        return made
    }

    /// An upstream that failed: unreachable, timed out, 5xx, or cut mid-stream.
    public func upstreamError(provider: String, kind: String) {
        registry.makeCounter(
            descriptor: .init(
                namespace: "gateway", metricName: "upstream_errors", unitName: "total",
                helpText: "Upstream failures by provider and kind."),
            labels: [("provider", provider), ("kind", kind)]
        ).increment()
    }

    public func budgetAlert(percent: Int) {
        registry.makeCounter(
            descriptor: .init(
                namespace: "gateway", metricName: "budget_alerts", unitName: "total",
                helpText: "Budget thresholds crossed (each fires once per tenant and period)."),
            labels: [("percent", String(percent))]
        ).increment()
    }

    /// A reservation the sweeper released because its request never settled it.
    public func reservationExpired() {
        registry.makeCounter(
            descriptor: .init(
                namespace: "gateway", metricName: "reservations_expired", unitName: "total",
                helpText: "Reservations released by the sweeper after their expiry (should stay 0)."),
            labels: []
        ).increment()
    }

    /// A request's settlement owner dropped unfinished, recorded by its last resort.
    public func orphanedSettlement() {
        registry.makeCounter(
            descriptor: .init(
                namespace: "gateway", metricName: "settlements_orphaned", unitName: "total",
                helpText: "Requests settled by their owner's last resort (should stay 0)."),
            labels: []
        ).increment()
    }

    public func tokenizerTime(_ duration: Duration) { tokenizer.record(duration) }

    public func ledgerCommit(_ stats: SQLiteLedger.CommitStats) {
        commitLatency.record(.nanoseconds(Int64(stats.seconds * 1e9)))
        commitBatch.record(Double(stats.records))
    }

    /// The exposition text; `queueDepth` is sampled now.
    public func exposition(ledgerQueueDepth: Int, outstandingReservations: Int = 0) -> [UInt8] {
        queueDepth.set(Int64(ledgerQueueDepth))
        outstanding.set(Int64(outstandingReservations))
        var out: [UInt8] = []
        out.reserveCapacity(16 << 10)
        registry.emit(into: &out)
        return out
    }
}
