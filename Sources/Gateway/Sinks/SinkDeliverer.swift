import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import Metering
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Delivers one billing sink's outbox in the background: claims due entries, sends them in the sink's
/// format, and deletes what the sink accepted. A failure is retried with exponential backoff and
/// jitter (honouring `Retry-After`); a 4xx other than 408 and 429 is final and parks the entry in the
/// dead-letter list. It never touches the request path: records reach it only through the outbox.
struct SinkDeliverer: Service {
    let sink: BillingSinkConfig
    let secret: String?
    let outbox: any OutboxStore
    let client: HTTPClient
    let metrics: GatewayMetrics
    let logger: Logger
    /// How often an idle deliverer looks for new entries.
    var poll: Duration = .milliseconds(100)

    /// The result of one attempt at an entry.
    enum Outcome: Sendable {
        case delivered
        case retry(status: Int?, error: String, after: TimeInterval?)
        case dead(status: Int?, error: String)
    }

    /// Reads a sink's secret from its environment variable or file; nil when it names neither or the
    /// value is missing.
    static func secret(for sink: BillingSinkConfig, environment: [String: String]) -> String? {
        sink.secretEnv.flatMap { Secrets.fromEnvironment($0, environment) } ?? sink.secretFile.flatMap(Secrets.fromFile)
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var lastStatus = ContinuousClock.now - .seconds(60)
            while !Task.isCancelled {
                let sent = await deliverOnce()
                if ContinuousClock.now - lastStatus > .seconds(5) {
                    lastStatus = ContinuousClock.now
                    await refreshBacklog()
                }
                if sent == 0 { try await Task.sleep(for: poll) }
            }
        }
    }

    /// The backlog gauges in `/metrics` (pending and dead-lettered entries).
    func refreshBacklog() async {
        guard let status = try? await outbox.outboxStatus() else { return }
        let mine = status.first { $0.sink == sink.name }
        metrics.sinkBacklog(sink: sink.name, pending: mine?.pending ?? 0, dead: mine?.dead ?? 0)
    }

    /// One round: claims a batch, sends it, records the outcomes; returns how many entries it handled.
    func deliverOnce(now: Date = Date()) async -> Int {
        let limit = sink.batchSize
        // The lease outlives a send's timeout, so an entry is claimed again only after its deliverer
        // has given up on it (or died).
        // The lease's end also names the claim: an entry is claimed again only after its lease ran out,
        // so a later claim always ends later, and a lapsed deliverer's outcomes no longer match.
        let lease = now.addingTimeInterval(Double(sink.timeoutMilliseconds) / 1000 * 3 + 5)
        let claimed: [(id: Int64, recordID: String, attempts: Int)]
        let records: [String: (BillingRecord, String, String?)]
        do {
            claimed = try await outbox.claimOutbox(sink: sink.name, limit: limit, now: now, until: lease)
            guard !claimed.isEmpty else { return 0 }
            records = try await outbox.outboxRecords(claimed.map(\.recordID))
        } catch {
            logger.warning("billing sink: the outbox could not be read", metadata: ["sink": "\(sink.name)"])
            return 0
        }
        var entries: [OutboxEntry] = []
        for c in claimed {
            guard let (record, name, stripe) = records[c.recordID] else {
                await settle(
                    c.id, lease: lease, attempts: c.attempts + 1,
                    .dead(status: nil, error: "the record is not in the ledger"))
                continue
            }
            entries.append(
                OutboxEntry(id: c.id, attempts: c.attempts, record: record, tenantName: name, stripeCustomerID: stripe))
        }
        var outcomes: [(OutboxEntry, Outcome)] = []
        switch sink.kind {
        case .cloudevents:
            let outcome = await sendCloudEvents(entries)
            outcomes = entries.map { ($0, outcome) }
            // A batch refused for good may hold one bad record (or be too large): each alone decides.
            if case .dead = outcome, entries.count > 1 {
                outcomes = []
                for e in entries { outcomes.append((e, await sendCloudEvents([e]))) }
            }
        case .stripe, .webhook:
            outcomes = await withTaskGroup(of: (OutboxEntry, Outcome).self) { group in
                for e in entries {
                    group.addTask { (e, sink.kind == .stripe ? await sendStripe(e) : await sendWebhook(e)) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
        }
        // What was delivered leaves the outbox in one write; failures are recorded one by one (rare).
        let delivered = outcomes.filter { if case .delivered = $0.1 { true } else { false } }
        if !delivered.isEmpty {
            do {
                try await outbox.outboxDelivered(delivered.map(\.0.id), lease: lease)
                let now = Date()
                metrics.sinkDelivered(
                    sink: sink.name, lags: delivered.map { now.timeIntervalSince($0.0.record.endedAt) })
            } catch {
                logger.warning("billing sink: deliveries could not be recorded", metadata: ["sink": "\(sink.name)"])
            }
        }
        for (e, outcome) in outcomes {
            if case .delivered = outcome { continue }
            await settle(e.id, lease: lease, attempts: e.attempts + 1, outcome)
        }
        return claimed.count
    }

    /// Records a failed attempt's outcome in the outbox (and the metrics).
    private func settle(_ id: Int64, lease: Date, attempts: Int, _ outcome: Outcome) async {
        do {
            switch outcome {
            case .delivered:
                try await outbox.outboxDelivered([id], lease: lease)
            case .retry(let status, let error, let after):
                // Exponential from 1 s, capped at 10 min, with full jitter over its upper half.
                let backoff = min(600, pow(2, Double(min(attempts - 1, 20))))
                let wait = max(after ?? 0, backoff * Double.random(in: 0.5...1))
                try await outbox.outboxRetry(
                    id, lease: lease, attempts: attempts, at: Date().addingTimeInterval(wait), status: status,
                    error: error)
                metrics.sinkFailed(sink: sink.name)
            case .dead(let status, let error):
                try await outbox.outboxDead(id, lease: lease, attempts: attempts, status: status, error: error)
                metrics.sinkDead(sink: sink.name)
                logger.error(
                    "billing sink refused a record for good; it is in the dead-letter list",
                    metadata: [
                        "sink": "\(sink.name)", "status": "\(status.map(String.init) ?? "-")", "error": "\(error)",
                    ])
            }
        } catch {
            // The entry stays claimed until its lease ends, then is sent again: a duplicate the id makes
            // harmless, never a loss.
            logger.warning("billing sink: an outcome could not be recorded", metadata: ["sink": "\(sink.name)"])
        }
    }

    private func sendCloudEvents(_ entries: [OutboxEntry]) async -> Outcome {
        let body = SinkPayloads.cloudEventsBatch(
            entries.map { ($0.record, $0.tenantName) }, source: sink.source, type: sink.eventType)
        var headers = HTTPHeaders([("content-type", "application/cloudevents-batch+json")])
        if let secret { headers.add(name: "authorization", value: "Bearer \(secret)") }
        return await post(sink.url, headers: headers, body: body)
    }

    private func sendStripe(_ e: OutboxEntry) async -> Outcome {
        guard let secret, !secret.isEmpty else { return .retry(status: nil, error: "no Stripe secret key", after: 60) }
        guard let customer = e.stripeCustomerID else {
            return .dead(status: nil, error: "tenant \(e.record.tenantID) has no stripe_customer_id")
        }
        if let currency = sink.currency, sink.value != .tokens, let charged = e.record.charged,
            charged.currency != currency, charged.nanos > 0
        {
            return .dead(status: nil, error: "charged in \(charged.currency), the meter counts \(currency)")
        }
        // Stripe takes events from the past 35 days only.
        guard Date().timeIntervalSince(e.record.startedAt) < 35 * 86_400 - 3_600 else {
            return .dead(status: nil, error: "the record is older than Stripe accepts (35 days)")
        }
        guard
            let body = SinkPayloads.stripeMeterEvent(
                e.record, customerID: customer, eventName: sink.eventName ?? "", value: sink.value)
        else { return .delivered }
        var headers = HTTPHeaders([("content-type", "application/x-www-form-urlencoded")])
        headers.add(name: "authorization", value: "Bearer \(secret)")
        headers.add(name: "idempotency-key", value: e.record.id)
        let base = sink.url.hasSuffix("/") ? String(sink.url.dropLast()) : sink.url
        return await post(base + "/v1/billing/meter_events", headers: headers, body: body)
    }

    private func sendWebhook(_ e: OutboxEntry) async -> Outcome {
        guard let secret, !secret.isEmpty else { return .retry(status: nil, error: "no signing secret", after: 60) }
        let body = SinkPayloads.recordJSON(e.record, tenantName: e.tenantName)
        let timestamp = String(Int64(Date().timeIntervalSince1970))
        var headers = HTTPHeaders([("content-type", "application/json")])
        headers.add(name: "x-gateway-event-id", value: e.record.id)
        headers.add(name: "x-gateway-timestamp", value: timestamp)
        headers.add(
            name: "x-gateway-signature",
            value: "t=\(timestamp),v1=\(Self.signature(secret: secret, timestamp: timestamp, body: body))")
        return await post(sink.url, headers: headers, body: body)
    }

    /// HMAC-SHA256 over `<timestamp>.<body>`, hex: what a receiver recomputes with the shared secret.
    static func signature(secret: String, timestamp: String, body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data((timestamp + "." + body).utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    private func post(_ url: String, headers: HTTPHeaders, body: String) async -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(sink.timeoutMilliseconds)))
            let code = Int(response.status.code)
            let retryAfter = response.headers.first(name: "retry-after").flatMap(Self.retryAfter)
            // The status decides; the body is only a hint for the log, and a large one is not an error.
            let detail = (try? await response.body.collect(upTo: 4_096)).map { String(buffer: $0) } ?? ""
            switch code {
            case 200..<300: return .delivered
            case 408, 429, 500...: return .retry(status: code, error: Self.short(detail), after: retryAfter)
            default: return .dead(status: code, error: Self.short(detail))
            }
        } catch {
            return .retry(status: nil, error: Self.short("\(error)"), after: nil)
        }
    }

    /// `Retry-After`: seconds, or an HTTP date.
    static func retryAfter(_ value: String) -> TimeInterval? {
        if let seconds = TimeInterval(value.trimmingCharacters(in: .whitespaces)), seconds >= 0 {
            return min(seconds, 3_600)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { min(3_600, max(0, $0.timeIntervalSinceNow)) }
    }

    static func short(_ text: String) -> String {
        text.count > 300 ? String(text.prefix(300)) + "…" : text
    }
}
