import Dispatch

/// Where blocking work runs: store reads and writes that the request path or the admin API needs.
///
/// Swift concurrency runs on NIO's event loops here (``EventLoopExecutor``), so a blocking SQLite call
/// made in a handler would stall every connection on that loop. Work wrapped in ``offEventLoop(_:)``
/// runs on Dispatch's pool instead and resumes the caller when done.
final class BlockingExecutor: TaskExecutor, @unchecked Sendable {
    static let shared = BlockingExecutor()

    private let queue = DispatchQueue(label: "gateway.blocking", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// Runs `body` off the event loops (see ``BlockingExecutor``).
func offEventLoop<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(BlockingExecutor.shared) { try await body() }
}
