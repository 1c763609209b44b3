import Metering
import Synchronization

/// Group commit for a ledger: `append` returns once its record is committed, and records that arrive
/// while a commit runs wait and go together in the next one, so concurrent requests share one commit
/// (and one sync) instead of paying one each. Both ledgers (SQLite, PostgreSQL) commit through it.
final class GroupCommit: Sendable {
    private struct State {
        var pending: [(BillingRecord, CheckedContinuation<Void, any Error>)] = []
        var flushing = false
    }

    private let state = Mutex(State())
    private let batchLimit: Int
    private let commit: @Sendable ([BillingRecord]) async throws -> Void
    private let onCommit: @Sendable (SQLiteLedger.CommitStats) -> Void

    /// `commit` stores its records in one transaction, all or none; a record already stored (a retried
    /// batch) must not be stored twice.
    init(
        batchLimit: Int = .max, onCommit: @escaping @Sendable (SQLiteLedger.CommitStats) -> Void,
        commit: @escaping @Sendable ([BillingRecord]) async throws -> Void
    ) {
        self.batchLimit = batchLimit
        self.onCommit = onCommit
        self.commit = commit
    }

    /// Records waiting for the next commit.
    var queueDepth: Int { state.withLock { $0.pending.count } }

    func append(_ record: BillingRecord) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let startFlusher = state.withLock { state in
                state.pending.append((record, continuation))
                if state.flushing { return false }
                state.flushing = true
                return true
            }
            // The flusher is its own task: a caller that is cancelled (its client went away) still gets
            // its record written.
            if startFlusher { Task { await self.flush() } }
        }
    }

    private func flush() async {
        while true {
            let batch = state.withLock { state in
                let batch = Array(state.pending.prefix(batchLimit))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            let started = ContinuousClock.now
            var failure: (any Error)?
            for attempt in 0..<4 {
                do {
                    try await commit(batch.map(\.0))
                    failure = nil
                    break
                } catch {
                    failure = error
                    // A busy or briefly unavailable database: back off and retry the same batch.
                    try? await Task.sleep(for: .milliseconds(25 << (2 * attempt)))
                }
            }
            let elapsed = ContinuousClock.now - started
            onCommit(
                SQLiteLedger.CommitStats(
                    records: batch.count,
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
            for (_, continuation) in batch {
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
            }
        }
    }
}
