import Foundation
import Metering
import Prometheus

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
    }

    /// Counts a settled request: requests, tokens, cost, latency and time to first token.
    public func recorded(_ r: BillingRecord) {
        let labels = [("provider", r.provider), ("model", r.model), ("status", r.status.rawValue)]
        registry.makeCounter(
            descriptor: .init(
                namespace: "gateway", metricName: "requests", unitName: "total",
                helpText: "Requests by provider, model and billing status."),
            labels: labels
        ).increment()
        guard r.status != .rejected else { return }
        let model = [("provider", r.provider), ("model", r.model)]
        for (kind, tokens) in [("prompt", r.usage.prompt), ("completion", r.usage.completion)] where tokens > 0 {
            registry.makeCounter(
                descriptor: .init(
                    namespace: "gateway", metricName: "tokens", unitName: "total",
                    helpText: "Billed tokens by provider, model and kind."),
                labels: model + [("kind", kind)]
            ).increment(by: Int64(tokens))
        }
        if let cost = r.cost, cost.nanos > 0 {
            registry.makeCounter(
                descriptor: .init(
                    namespace: "gateway", metricName: "cost_nanos", unitName: "total",
                    helpText: "Billed cost in nano-units of the currency (exact integers)."),
                labels: model + [("currency", cost.currency)]
            ).increment(by: cost.nanos)
        }
        registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "gateway", metricName: "request_duration", unitName: "seconds",
                helpText: "Request duration, start to last byte."),
            labels: labels, buckets: Self.latencyBuckets
        ).record(.milliseconds(Int64((r.endedAt.timeIntervalSince(r.startedAt) * 1000).rounded())))
        if let ttft = r.timeToFirstTokenMs {
            registry.makeDurationHistogram(
                descriptor: .init(
                    namespace: "gateway", metricName: "time_to_first_token", unitName: "seconds",
                    helpText: "Time from the request's start to the first relayed response byte."),
                labels: model, buckets: Self.latencyBuckets
            ).record(.milliseconds(ttft))
        }
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

    public func tokenizerTime(_ duration: Duration) { tokenizer.record(duration) }

    public func ledgerCommit(_ stats: SQLiteLedger.CommitStats) {
        commitLatency.record(.nanoseconds(Int64(stats.seconds * 1e9)))
        commitBatch.record(Double(stats.records))
    }

    /// The exposition text; `queueDepth` is sampled now.
    public func exposition(ledgerQueueDepth: Int) -> [UInt8] {
        queueDepth.set(Int64(ledgerQueueDepth))
        var out: [UInt8] = []
        out.reserveCapacity(16 << 10)
        registry.emit(into: &out)
        return out
    }
}
