import Logging
import Metering

/// The record stage: makes a settled record durable and counts it in the metrics.
struct BillingRecorder: Sendable {
    let ledger: any Ledger
    let policy: PolicyService
    let metrics: GatewayMetrics
    let logger: Logger

    /// Settles the request's reservation (the free/paid split goes into the record), then returns once
    /// the record is durable; throws if it could not be stored, in which case the response must not
    /// complete normally (a client never gets a complete answer without its record).
    func record(_ record: BillingRecord, reservation: Reservation?) async throws {
        let stored: BillingRecord
        let split: ChargeSplit?
        do {
            (stored, split) = try await policy.settleAndStore(record, reservation: reservation, in: ledger)
        } catch {
            logger.error(
                "billing record could not be stored",
                metadata: ["request_id": "\(record.requestID)", "error": "\(error)"])
            throw error
        }
        if let split { policy.announce(split) }
        metrics.recorded(stored)
    }

    /// A request's owner was dropped unfinished; its record is written by the owner's last resort.
    func orphaned() {
        metrics.orphanedSettlement()
        logger.error("a request's settlement owner was dropped unfinished; recorded as client_disconnected")
    }

    /// For paths that answer with an error anyway (rejections, upstream failures): the record is
    /// attempted and a failure is logged, but the client's error response does not depend on it.
    func recordBestEffort(_ record: BillingRecord, reservation: Reservation?) async {
        try? await self.record(record, reservation: reservation)
    }
}
