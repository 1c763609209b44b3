import Foundation
import GRDB
import Metering
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import Gateway

/// With `ledger_sync: normal`, a batch commits on the event loop of the request that found the ledger
/// idle; a due checkpoint, and a write lock held by another process, send it off the loops instead.
@Suite("Ledger commits on event loops")
struct LedgerOnLoopTests {
    struct Fixture {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onloop-\(UUID().uuidString)").path
        let store: GatewayStore
        let ledger: SQLiteLedger
        let commits = Counts()

        init(synchronous: String = "NORMAL") throws {
            store = try GatewayStore(dataDirectory: dir, synchronous: synchronous)
            let commits = self.commits
            ledger = SQLiteLedger(store: store) { stats in
                let onLoop = MultiThreadedEventLoopGroup.currentEventLoop != nil
                commits.withLock {
                    if onLoop { $0.onLoops += 1 } else { $0.offLoops += 1 }
                    $0.records += stats.records
                }
            }
        }

        func stored() async throws -> Set<String> {
            Set(
                try await store.billingPage(.init(from: .distantPast, to: .distantFuture), afterSeq: 0, limit: 100_000)
                    .map(\.record.id))
        }
    }

    final class Counts: Sendable {
        private let value = Mutex((onLoops: 0, offLoops: 0, records: 0))
        func withLock<T>(_ body: (inout (onLoops: Int, offLoops: Int, records: Int)) -> T) -> T {
            value.withLock { body(&$0) }
        }
    }

    static func record(_ n: Int) -> BillingRecord {
        StoreConformanceTests.record(
            tenant: "t\(n % 5)", model: "m", at: Date(timeIntervalSince1970: 1_796_000_000 + Double(n)),
            cost: Int64(n), currency: "USD", budget: 0, free: 0)
    }

    /// Appends each record from a task that runs on one of `group`'s loops, and checks that its caller
    /// resumes on that loop.
    static func append(_ records: [BillingRecord], to ledger: SQLiteLedger, on group: MultiThreadedEventLoopGroup)
        async throws
    {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for record in records {
                let loop = group.any()
                tasks.addTask(executorPreference: LoopExecutor(loop: loop)) {
                    try await ledger.append(record)
                    #expect(loop.inEventLoop, "a caller resumes on its own loop")
                }
            }
            try await tasks.waitForAll()
        }
    }

    @Test("concurrent records from two loops are all stored, in shared commits made on the loops")
    func sharedCommitsOnLoops() async throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let records = (0..<600).map(Self.record)
        try await Self.append(records, to: f.ledger, on: group)
        #expect(try await f.stored() == Set(records.map(\.id)))
        let commits = f.commits.withLock { $0 }
        #expect(commits.records == records.count)
        #expect(commits.onLoops > 0)
        #expect(commits.onLoops + commits.offLoops < records.count, "concurrent records should share commits")
        try await group.shutdownGracefully()
    }

    @Test("ledger_sync full never commits on a loop")
    func fullStaysOffLoops() async throws {
        let f = try Fixture(synchronous: "FULL")
        defer { try? FileManager.default.removeItem(atPath: f.dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let records = (0..<50).map(Self.record)
        try await Self.append(records, to: f.ledger, on: group)
        #expect(try await f.stored() == Set(records.map(\.id)))
        #expect(f.commits.withLock { $0.onLoops } == 0)
        try await group.shutdownGracefully()
    }

    @Test("checkpoints still run, never on a loop, and the WAL stays bounded")
    func checkpointsOffLoops() async throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // One record per commit: each one adds a few pages to the WAL, well past the threshold in all.
        let records = (0..<1500).map(Self.record)
        for record in records { try await Self.append([record], to: f.ledger, on: group) }
        #expect(try await f.stored() == Set(records.map(\.id)))
        let checkpoints = f.store.checkpointer.checkpoints
        #expect(checkpoints.all >= 1)
        #expect(checkpoints.onLoops == 0)
        let commits = f.commits.withLock { $0 }
        #expect(commits.onLoops > commits.offLoops, "most commits are made on the loop")
        #expect(commits.offLoops >= checkpoints.all, "each checkpoint is run by a commit off the loops")
        let wal = try FileManager.default.attributesOfItem(atPath: f.store.path + "-wal")[.size] as? Int ?? .max
        #expect(wal <= Int(WALCheckpointer.threshold + 100) * (4096 + 24), "the WAL restarts after each checkpoint")
        try await group.shutdownGracefully()
    }

    @Test("a write lock held by another process: the record waits for it off the loop, which keeps serving")
    func busyGoesOffLoop() async throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.dir) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        // Another connection to the file (as the CLI would open) takes the write lock for a while.
        let other = try DatabaseQueue(path: f.store.path)
        // 0: not yet taken, 1: held, 2: released.
        let lock = Mutex(0)
        let holder = Task.detached {
            try other.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                lock.withLock { $0 = 1 }
                Thread.sleep(forTimeInterval: 1.5)
                lock.withLock { $0 = 2 }
                try db.execute(sql: "COMMIT")
            }
        }
        while lock.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(5)) }
        let record = Self.record(1)
        let appended = Task { try await Self.append([record], to: f.ledger, on: group) }
        // While the record waits for the lock, the loop still runs other work: a job queued on it runs
        // while the lock is held (were the loop waiting on the lock, it would run only after).
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await loop.submit { lock.withLock { $0 } }.get() == 1)
        try await appended.value
        try await holder.value
        #expect(try await f.stored() == [record.id])
        #expect(f.commits.withLock { $0.offLoops } == 1)
        try await group.shutdownGracefully()
    }
}

/// Runs a task's jobs on one event loop, as the gateway runs all of Swift concurrency on its loops.
final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop
    init(loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}
