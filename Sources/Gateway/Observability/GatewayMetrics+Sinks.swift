import Foundation
import Prometheus

/// Billing sinks' series: deliveries, failed attempts, entries parked, the backlog and the delivery lag.
extension GatewayMetrics {
    static let lagBuckets: [Duration] = [
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300), .seconds(3_600),
    ]

    /// Records a sink accepted, with each one's lag (from its end to its delivery).
    func sinkDelivered(sink: String, lags: [TimeInterval]) {
        sinkCounter("sink_delivered", "Billing records a sink accepted.", sink).increment(by: Int64(lags.count))
        let histogram = registry.makeDurationHistogram(
            descriptor: .init(
                namespace: "gateway", metricName: "sink_lag", unitName: "seconds",
                helpText: "From a record's end to its delivery to a sink."),
            labels: [("sink", sink)], buckets: Self.lagBuckets)
        for lag in lags { histogram.record(.nanoseconds(Int64(max(0, lag) * 1e9))) }
    }

    func sinkFailed(sink: String) {
        sinkCounter("sink_failed_attempts", "Delivery attempts that failed and will be retried.", sink).increment()
    }

    func sinkDead(sink: String) {
        sinkCounter(
            "sink_dead_lettered", "Records a sink refused for good, parked in the dead-letter list.", sink
        ).increment()
    }

    /// The outbox as last read: entries waiting and entries in the dead-letter list.
    func sinkBacklog(sink: String, pending: Int, dead: Int) {
        sinkGauge("sink_pending", "Records waiting for delivery to a sink.", sink).set(Int64(pending))
        sinkGauge("sink_dead_letters", "Records in a sink's dead-letter list.", sink).set(Int64(dead))
    }

    private func sinkCounter(_ name: String, _ help: String, _ sink: String) -> Counter {
        registry.makeCounter(
            descriptor: .init(namespace: "gateway", metricName: name, unitName: "total", helpText: help),
            labels: [("sink", sink)])
    }

    private func sinkGauge(_ name: String, _ help: String, _ sink: String) -> Gauge {
        registry.makeGauge(
            descriptor: .init(namespace: "gateway", metricName: name, unitName: "records", helpText: help),
            labels: [("sink", sink)])
    }
}

/// Providers' circuits and keys, sampled when `/metrics` is read.
extension GatewayMetrics {
    @discardableResult
    func providers(
        _ snapshot: [(provider: String, circuit: ProviderHealth.Circuit, keys: [(id: String, state: String)])]
    )
        -> GatewayMetrics
    {
        for p in snapshot {
            registry.makeGauge(
                descriptor: .init(
                    namespace: "gateway", metricName: "provider_circuit_open", unitName: "state",
                    helpText: "1 while a provider is skipped after repeated failures (open or half-open), else 0."),
                labels: [("provider", p.provider)]
            ).set(Int64(p.circuit == .closed ? 0 : 1))
            for key in p.keys {
                registry.makeGauge(
                    descriptor: .init(
                        namespace: "gateway", metricName: "provider_key_usable", unitName: "state",
                        helpText:
                            "1 when a provider key takes requests; 0 while it rests after a 429 or is out after 401/403."
                    ),
                    labels: [("provider", p.provider), ("key", key.id)]
                ).set(Int64(key.state == "ok" ? 1 : 0))
            }
        }
        return self
    }
}
