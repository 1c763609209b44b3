import GRDB
import GRDBSQLite
import NIOPosix
import Synchronization

/// SQLite's automatic WAL checkpoint on the writer connection, with one change: a commit made on an
/// event loop never runs it.
///
/// The automatic checkpoint runs inside the commit that takes the WAL past its threshold, copying about a
/// thousand pages back into the database file and syncing twice, even with `synchronous = NORMAL`. On an
/// event loop that would stall every connection of the loop for milliseconds. So a commit made there
/// leaves the checkpoint due, and the ledger sends its next commit off the loops, where it runs as before.
final class WALCheckpointer: Sendable {
    /// SQLite's own automatic checkpoint size, in pages.
    static let threshold: Int32 = 1000

    private let walPages = Atomic<Int32>(0)
    private let deferring = Atomic(false)
    private let runs = Atomic(0)
    private let runsOnLoops = Atomic(0)

    /// Whether the WAL has passed the threshold since its last checkpoint.
    var isDue: Bool { walPages.load(ordering: .relaxed) >= Self.threshold }

    /// Checkpoints run so far, and how many of them ran on an event loop (for tests: none should).
    var checkpoints: (all: Int, onLoops: Int) {
        (runs.load(ordering: .relaxed), runsOnLoops.load(ordering: .relaxed))
    }

    /// Installs the hook on `db`, the writer connection, in place of SQLite's automatic checkpoint. Its
    /// context is a small box, kept for the life of the process, that holds this object weakly: the
    /// connection may outlive it.
    func install(on db: Database) {
        let box = Unmanaged.passRetained(WeakBox(self)).toOpaque()
        sqlite3_wal_hook(
            db.sqliteConnection,
            { context, connection, name, pages in
                guard let context, let target = Unmanaged<WeakBox>.fromOpaque(context).takeUnretainedValue().target
                else { return SQLITE_OK }
                target.committed(walPages: pages, connection: connection, name: name)
                return SQLITE_OK
            }, box)
    }

    /// Runs `commit` on the writer without checkpointing after it.
    func withoutCheckpoint<T>(_ commit: () throws -> T) rethrows -> T {
        deferring.store(true, ordering: .relaxed)
        defer { deferring.store(false, ordering: .relaxed) }
        return try commit()
    }

    /// Called by SQLite after each commit on the writer (the writer's calls are serialized).
    private func committed(walPages pages: Int32, connection: OpaquePointer?, name: UnsafePointer<CChar>?) {
        walPages.store(pages, ordering: .relaxed)
        guard pages >= Self.threshold, !deferring.load(ordering: .relaxed) else { return }
        // As SQLite's own hook: a passive checkpoint; a failure leaves it due for the next commit.
        if sqlite3_wal_checkpoint(connection, name) == SQLITE_OK {
            walPages.store(0, ordering: .relaxed)
            runs.add(1, ordering: .relaxed)
            if MultiThreadedEventLoopGroup.currentEventLoop != nil { runsOnLoops.add(1, ordering: .relaxed) }
        }
    }

    private final class WeakBox {
        weak var target: WALCheckpointer?
        init(_ target: WALCheckpointer) { self.target = target }
    }
}
