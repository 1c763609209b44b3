import Foundation
import Logging
import Metering
import ServiceLifecycle

/// Releases reservations that outlived their expiry. Every path through the pipeline settles its
/// request, so this should never find one; if it does, the leak stops at the expiry, and the release is
/// logged and counted (`gateway_reservations_expired_total`).
struct ReservationSweeper: Service {
    let policy: PolicyService
    let metrics: GatewayMetrics
    let logger: Logger
    let interval: Duration

    func run() async throws {
        // Shutdown must not wait out a sleep: the loop is cancelled when graceful shutdown begins.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: interval)
                sweep()
            }
        }
    }

    func sweep() {
        for reservation in policy.sweepExpired() {
            metrics.reservationExpired()
            logger.error(
                "reservation expired unsettled; released",
                metadata: [
                    "tenant": "\(reservation.tenantID)", "key": "\(reservation.keyID)",
                    "model": "\(reservation.model)",
                ])
        }
    }
}
