import AsyncHTTPClient
import Foundation
import Logging
import Metering
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// Sends budget alerts: a log line always, and a JSON POST to the configured webhook, retried with
/// backoff in the background so it never holds up a request.
final class AlertNotifier: Service, Sendable {
    private let webhook: String?
    private let client: HTTPClient?
    private let logger: Logger

    init(webhook: String?, eventLoopGroup: any EventLoopGroup, logger: Logger) {
        self.webhook = webhook
        self.logger = logger
        client =
            webhook == nil
            ? nil
            : HTTPClient(
                eventLoopGroupProvider: .shared(eventLoopGroup),
                configuration: .init(
                    redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(10))))
    }

    func notify(_ alert: BudgetAlert) {
        logger.warning(
            "budget threshold crossed",
            metadata: [
                "tenant_id": "\(alert.tenantID)", "percent": "\(alert.percent)",
                "used": "\(alert.used.decimalString) \(alert.used.currency)",
                "limit": "\(alert.limit.decimalString) \(alert.limit.currency)", "hard": "\(alert.hard)",
            ])
        guard let webhook, let client else { return }
        let body = JSONWriter.serialize(
            .object([
                ("type", "budget.threshold_crossed"), ("tenant_id", .string(alert.tenantID)),
                ("percent", .int(alert.percent)), ("used", .string(alert.used.decimalString)),
                ("limit", .string(alert.limit.decimalString)), ("currency", .string(alert.limit.currency)),
                ("period_start", .string(BillingExportFormat.timestamp(alert.periodStart))),
                ("mode", .string(alert.hard ? "hard" : "soft")),
            ]))
        let logger = logger
        Task {
            for attempt in 0..<6 {
                var request = HTTPClientRequest(url: webhook)
                request.method = .POST
                request.headers.add(name: "content-type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body))
                if let response = try? await client.execute(request, timeout: .seconds(10)),
                    (200..<300).contains(response.status.code)
                {
                    return
                }
                try? await Task.sleep(for: .milliseconds(250 << attempt))
            }
            logger.error("budget alert webhook failed after retries", metadata: ["tenant_id": "\(alert.tenantID)"])
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
        try await client?.shutdown()
    }
}
