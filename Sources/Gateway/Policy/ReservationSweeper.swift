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
                await sweep()
            }
        }
    }

    func sweep() async {
        let expired: [ExpiredReservation]
        do {
            expired = try await policy.sweepExpired()
        } catch {
            logger.warning("expired reservations could not be released now", metadata: ["error": "\(error)"])
            return
        }
        for reservation in expired {
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

/// A reservation the sweeper released: whose it was, for the log.
struct ExpiredReservation: Sendable {
    var tenantID: String
    var keyID: String
    var model: String
}
