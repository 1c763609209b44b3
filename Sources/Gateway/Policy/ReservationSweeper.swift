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
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
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
}
