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
    private let commitOnLoop: (@Sendable ([Item]) throws -> [Output]?)?
    private let onCommit: @Sendable (SQLiteLedger.CommitStats) -> Void

    /// `commit` stores its items in one transaction, all or none; a record already stored (a retried
    /// batch: `attempt` above 0) must not be stored or settled twice.
    ///
    /// `commitOnLoop`, if given, is the same commit made synchronously, for a store whose commit neither
    /// syncs nor waits on the network (SQLite with `synchronous = NORMAL`). A batch then commits on the
    /// event loop of the request that found the ledger idle, after the work already queued there (whose
    /// requests may finish meanwhile and share the commit), instead of going to a store thread and back
    /// (two thread wake-ups and a task per commit). It returns nil when the batch should not commit on a
    /// loop now; that batch, and one that fails there, goes to `commit`.
    init(
        batchLimit: Int = .max, attempts: Int = 4, onCommit: @escaping @Sendable (SQLiteLedger.CommitStats) -> Void,
        commitOnLoop: (@Sendable ([Item]) throws -> [Output]?)? = nil,
        commit: @escaping @Sendable ([Item], _ attempt: Int) async throws -> [Output]
    ) {
        self.batchLimit = batchLimit
        self.attempts = attempts
        self.onCommit = onCommit
        self.commitOnLoop = commitOnLoop
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
            guard startFlusher else { return }
            if let loop, commitOnLoop != nil {
                loop.execute { self.flushOnLoop(loop) }
            } else {
                // The flusher is its own task: a caller that is cancelled (its client went away) still
                // gets its record written.
                Task { await self.flush() }
            }
        }
    }

    /// Takes the next batch; with none left, the ledger is idle again.
    private func nextBatch() -> [(Item, Waiter)] {
        state.withLock { state in
            let batch = Array(state.pending.prefix(batchLimit))
            state.pending.removeFirst(batch.count)
            if batch.isEmpty { state.flushing = false }
            return batch
        }
    }

    /// Commits one batch on `loop`, then queues itself behind the loop's other work while items remain.
    private func flushOnLoop(_ loop: any EventLoop) {
        guard let commitOnLoop else { return }
        let batch = nextBatch()
        if batch.isEmpty { return }
        let started = ContinuousClock.now
        guard let outputs = try? commitOnLoop(batch.map(\.0)) else {
            // Not now, or it failed (and stored nothing): the batch goes the way of every other store,
            // with its retries, off the loop.
            Task { await self.flush(first: batch) }
            return
        }
        finish(batch, .success(outputs), started: started)
        let more = state.withLock { state in
            if state.pending.isEmpty { state.flushing = false }
            return state.flushing
        }
        if more { loop.execute { self.flushOnLoop(loop) } }
    }

    private func flush(first: [(Item, Waiter)] = []) async {
        var batch = first.isEmpty ? nextBatch() : first
        while !batch.isEmpty {
            let started = ContinuousClock.now
            var result: Result<[Output], any Error> = .success([])
            for attempt in 0..<attempts {
                do {
                    result = .success(try await commit(batch.map(\.0), attempt))
                    break
                } catch {
                    result = .failure(error)
                    // A busy or briefly unavailable database: back off and retry the same batch.
                    if attempt + 1 < attempts { try? await Task.sleep(for: .milliseconds(25 << (2 * attempt))) }
                }
            }
            finish(batch, result, started: started)
            batch = nextBatch()
        }
    }

    /// Reports the commit and resumes each waiter with its output.
    private func finish(
        _ batch: [(Item, Waiter)], _ result: Result<[Output], any Error>, started: ContinuousClock.Instant
    ) {
        let elapsed = ContinuousClock.now - started
        onCommit(
            SQLiteLedger.CommitStats(
                records: batch.count,
                seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
        for (index, (_, waiter)) in batch.enumerated() {
            switch result {
            case .failure(let failure): waiter.resume(.failure(failure))
            case .success(let outputs) where index < outputs.count: waiter.resume(.success(outputs[index]))
            case .success: waiter.resume(.failure(StoreError.invalid("the commit returned too few results")))
            }
        }
    }
}
