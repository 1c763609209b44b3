import Foundation
import GRDB
import GRDBSQLite
import Metering
import Synchronization

/// The billing ledger in the embedded SQLite store, with group commit.
///
/// `append` returns once the record is committed (WAL, `synchronous = FULL`). Records that arrive while
/// a commit is running wait and go together in the next transaction, so concurrent requests share one
/// sync instead of paying one each: throughput grows with concurrency while every caller still waits for
/// its own record to be durable.
public final class SQLiteLedger: Ledger {
    public struct CommitStats: Sendable {
        public var records: Int
        public var seconds: Double
    }

    private struct State {
        var pending: [(BillingRecord, CheckedContinuation<Void, any Error>)] = []
        var flushing = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    private let onCommit: @Sendable (CommitStats) -> Void

    public init(store: GatewayStore, onCommit: @escaping @Sendable (CommitStats) -> Void = { _ in }) {
        self.pool = store.pool
        self.onCommit = onCommit
    }

    /// Records waiting for the next commit.
    public var queueDepth: Int { state.withLock { $0.pending.count } }

    public func append(_ record: BillingRecord) async throws {
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
                let batch = state.pending
                state.pending = []
                if batch.isEmpty { state.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            let started = ContinuousClock.now
            var failure: (any Error)?
            for attempt in 0..<4 {
                do {
                    try await pool.writeWithoutTransaction { db in try Self.commit(batch.map(\.0), db) }
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
                CommitStats(
                    records: batch.count,
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18))
            for (_, continuation) in batch {
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
            }
        }
    }

    static let insertSQL =
        "INSERT INTO billing_records (\(BillingRecordRow.columns.joined(separator: ", "))) VALUES ("
        + Array(repeating: "?", count: BillingRecordRow.columns.count).joined(separator: ", ") + ")"

    /// Inserts `records` in one transaction, through SQLite's C API on statements prepared once: at one
    /// record per commit, GRDB's general path (arguments boxed per value, bookkeeping per statement) cost
    /// more than SQLite's insert and commit. No GRDB transaction observer is registered on this store.
    static func commit(_ records: [BillingRecord], _ db: Database) throws {
        try step(db.cachedStatement(sql: "BEGIN IMMEDIATE"), db)
        do {
            let insert = try db.cachedStatement(sql: insertSQL)
            for record in records {
                try step(insert, db) { BillingRecordRow.bind(record, to: $0) }
            }
            try step(db.cachedStatement(sql: "COMMIT"), db)
        } catch {
            if db.isInsideTransaction { try? step(db.cachedStatement(sql: "ROLLBACK"), db) }
            throw error
        }
    }

    /// Runs a statement that returns no rows, after `bind` (which returns an SQLite result code).
    private static func step(
        _ statement: Statement, _ db: Database, bind: (SQLiteStatement) -> Int32 = { _ in SQLITE_OK }
    ) throws {
        let handle = statement.sqliteStatement
        var rc = bind(handle)
        if rc == SQLITE_OK { rc = sqlite3_step(handle) }
        let message = rc == SQLITE_DONE ? nil : String(cString: sqlite3_errmsg(db.sqliteConnection))
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        guard rc == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: message, sql: statement.sql)
        }
    }

    static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
