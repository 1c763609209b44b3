import Metering
import NIOCore
import NIOPosix
import Synchronization

/// Group commit for a ledger: `append` returns once its record is committed, and records that arrive
/// while a commit runs wait and go together in the next one, so concurrent requests share one commit
/// (and one sync) instead of paying one each. Both ledgers (SQLite, PostgreSQL) commit through it.
///
/// An item is what one caller stores (a record, or a record with the reservation it settles); the commit
/// returns one output per item, in order.
final class GroupCommit<Item: Sendable, Output: Sendable>: Sendable {
    private struct State {
        var pending: [(Item, Waiter)] = []
        var flushing = false
    }

    /// A caller, and the event loop it ran on: it resumes there, on its connection's loop, rather than
    /// wherever the commit finished (the store's thread, then any loop), which would move the rest of
    /// its request to another loop's thread.
    private struct Waiter {
        let continuation: CheckedContinuation<Output, any Error>
        let loop: (any EventLoop)?

        func resume(_ result: Result<Output, any Error>) {
            guard let loop, !loop.inEventLoop else {
                continuation.resume(with: result)
                return
            }
            loop.execute { continuation.resume(with: result) }
        }
    }

    private let state = Mutex(State())
    private let batchLimit: Int
    private let attempts: Int
    private let commit: @Sendable ([Item], _ attempt: Int) async throws -> [Output]
    private let onCommit: @Sendable (SQLiteLedger.CommitStats) -> Void

    /// `commit` stores its items in one transaction, all or none; a record already stored (a retried
    /// batch: `attempt` above 0) must not be stored or settled twice.
    init(
        batchLimit: Int = .max, attempts: Int = 4, onCommit: @escaping @Sendable (SQLiteLedger.CommitStats) -> Void,
        commit: @escaping @Sendable ([Item], _ attempt: Int) async throws -> [Output]
    ) {
        self.batchLimit = batchLimit
        self.attempts = attempts
        self.onCommit = onCommit
        self.commit = commit
    }

    /// Records waiting for the next commit.
    var queueDepth: Int { state.withLock { $0.pending.count } }

    func append(_ item: Item) async throws -> Output {
        let loop = MultiThreadedEventLoopGroup.currentEventLoop
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
            let startFlusher = state.withLock { state in
                state.pending.append((item, Waiter(continuation: continuation, loop: loop)))
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
            var outputs: [Output] = []
            for attempt in 0..<attempts {
                do {
                    outputs = try await commit(batch.map(\.0), attempt)
                    failure = nil
                    break
                } catch {
                    failure = error
                    // A busy or briefly unavailable database: back off and retry the same batch.
                    if attempt + 1 < attempts { try? await Task.sleep(for: .milliseconds(25 << (2 * attempt))) }
                }
            }
            let elapsed = ContinuousClock.now - started
            onCommit(
                SQLiteLedger.CommitStats(
                    records: batch.count,
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
            for (index, (_, waiter)) in batch.enumerated() {
                if let failure {
                    waiter.resume(.failure(failure))
                } else if index < outputs.count {
                    waiter.resume(.success(outputs[index]))
                } else {
                    waiter.resume(.failure(StoreError.invalid("the commit returned too few results")))
                }
            }
        }
    }
}
