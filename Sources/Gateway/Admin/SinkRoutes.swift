import Foundation
import HTTPTypes
import Hummingbird
import Metering

/// Billing sinks in the admin API: each sink's backlog, its dead-letter list, and retrying it.
extension AdminAPI {
    func registerSinks(_ route: (HTTPRequest.Method, String, @escaping Handler) -> Void) {
        route(.get, "/admin/v1/sinks") { _, _ in
            let status = try await run { try await store.outboxStatus() }
            let rows = sinks.map { sink in Self.sinkJSON(sink, status.first { $0.sink == sink.name }) }
            return (200, .object([("data", .array(rows))]))
        }
        route(.get, "/admin/v1/sinks/:sink/dead") { request, context in
            let sink = try configured(try Self.parameter(context, "sink"))
            let limit = Self.query(request, "limit").flatMap(Int.init).map { min(max($0, 1), 10_000) } ?? 1_000
            let dead = try await run { try await store.deadLetters(sink: sink.name, limit: limit) }
            return (200, .object([("data", .array(dead.map(Self.deadJSON)))]))
        }
        // Back to pending, due now: all of the sink's dead letters, or one record's ({"record_id": …}).
        route(.post, "/admin/v1/sinks/:sink/retry") { request, context in
            let sink = try configured(try Self.parameter(context, "sink"))
            let body = try await Self.body(request, optional: true)
            let record = try body.string("record_id")
            let n = try await run { try await store.retryDead(sink: sink.name, recordID: record) }
            return (200, .object([("sink", .string(sink.name)), ("retried", .int(n))]))
        }
    }

    private func configured(_ name: String) throws(GatewayError) -> BillingSinkConfig {
        guard let sink = sinks.first(where: { $0.name == name }) else {
            throw GatewayError(status: 404, message: "no billing sink '\(name)'", code: "not_found")
        }
        return sink
    }

    static func sinkJSON(_ sink: BillingSinkConfig, _ status: OutboxSinkStatus?) -> JSONValue {
        .object([
            ("name", .string(sink.name)), ("kind", .string(sink.kind.rawValue)),
            ("pending", .int(status?.pending ?? 0)),
            ("dead", .int(status?.dead ?? 0)),
            ("oldest_pending_at", status?.oldestPending.map { .string(BillingExportFormat.timestamp($0)) } ?? .null),
        ])
    }

    static func deadJSON(_ d: DeadLetter) -> JSONValue {
        .object([
            ("record_id", .string(d.recordID)), ("attempts", .int(d.attempts)),
            ("last_status", d.lastStatus.map(JSONValue.int) ?? .null),
            ("last_error", d.lastError.map(JSONValue.string) ?? .null),
        ])
    }

    /// `stripe_customer_id`: a string (empty clears it) or null (clears it); absent leaves it.
    static func stripeCustomer(_ body: AdminBody) throws(GatewayError) -> String? {
        switch body.json["stripe_customer_id"] {
        case nil: return nil
        case .null?: return ""
        case .string(let id)?:
            guard GatewayStore.isStripeCustomerID(id) else {
                throw invalid("stripe_customer_id must be one word such as cus_123", param: "stripe_customer_id")
            }
            return id
        default: throw invalid("stripe_customer_id must be a string or null", param: "stripe_customer_id")
        }
    }
}
