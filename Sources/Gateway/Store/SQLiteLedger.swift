import Foundation
import GRDB
import GRDBSQLite
import Metering
import Synchronization

/// The billing ledger in the embedded SQLite store, with group commit.
///
/// `append` returns once the record is committed (WAL, `synchronous = FULL`; or written, `NORMAL`);
/// concurrent records share commits (``GroupCommit``), so throughput grows with concurrency while every
/// caller still waits for its own record to be durable. With `NORMAL`, a commit runs on the event loop
/// of a request that found the ledger idle (see ``GroupCommit``), never waiting for another process's
/// lock there and never running a checkpoint there (see ``WALCheckpointer``).
public final class SQLiteLedger: Ledger {
    public struct CommitStats: Sendable {
        public var records: Int
        public var seconds: Double
    }

    private let group: GroupCommit<BillingRecord, Void>

    /// `sinks`: the billing sinks each record gets a delivery entry for, in its own commit.
    public init(
        store: GatewayStore, sinks: [String] = [], onCommit: @escaping @Sendable (CommitStats) -> Void = { _ in }
    ) {
        let pool = store.pool
        let checkpointer = store.checkpointer
        let onLoop: (@Sendable ([BillingRecord]) throws -> [Void]?)? =
            store.syncsEachCommit
            ? nil
            : { @Sendable records in
                try Self.commitOnLoop(records, sinks: sinks, pool: pool, checkpointer: checkpointer)
            }
        group = GroupCommit(onCommit: onCommit, commitOnLoop: onLoop) { records, _ in
            try await pool.writeWithoutTransaction { db in try Self.commit(records, sinks: sinks, db) }
            return Array(repeating: (), count: records.count)
        }
    }

    /// Records waiting for the next commit.
    public var queueDepth: Int { group.queueDepth }

    public func append(_ record: BillingRecord) async throws { try await group.append(record) }

    /// A commit made on an event loop (`NORMAL` only), or nil when this batch should commit off the loops.
    private static func commitOnLoop(
        _ records: [BillingRecord], sinks: [String], pool: DatabasePool, checkpointer: WALCheckpointer
    ) throws -> [Void]? {
        // A checkpoint is due: the next commit runs it, off the loops.
        if checkpointer.isDue { return nil }
        try pool.writeWithoutTransaction { (db: Database) throws -> Void in
            let connection = db.sqliteConnection
            // Another process holds the write lock: the batch waits for it off the loops instead.
            sqlite3_busy_timeout(connection, 0)
            defer { sqlite3_busy_timeout(connection, GatewayStore.busyTimeoutMilliseconds) }
            try checkpointer.withoutCheckpoint { try commit(records, sinks: sinks, db) }
        }
        return Array(repeating: (), count: records.count)
    }

    static let insertSQL =
        "INSERT INTO billing_records (\(BillingRecordRow.columns.joined(separator: ", "))) VALUES ("
        + Array(repeating: "?", count: BillingRecordRow.columns.count).joined(separator: ", ") + ")"

    /// Inserts `records` in one transaction, through SQLite's C API on statements prepared once: at one
    /// record per commit, GRDB's general path (arguments boxed per value, bookkeeping per statement) cost
    /// more than SQLite's insert and commit. No GRDB transaction observer is registered on this store.
    static func commit(_ records: [BillingRecord], sinks: [String] = [], _ db: Database) throws {
        try step(db.cachedStatement(sql: "BEGIN IMMEDIATE"), db)
        do {
            let insert = try db.cachedStatement(sql: insertSQL)
            let outbox = sinks.isEmpty ? nil : try db.cachedStatement(sql: BillingRecordRow.outboxSQL)
            let now = microseconds(Date())
            for record in records {
                try step(insert, db) { BillingRecordRow.bind(record, to: $0) }
                if let outbox {
                    for sink in sinks {
                        try step(outbox, db) {
                            BillingRecordRow.bindOutbox(recordID: record.id, sink: sink, now: now, to: $0)
                        }
                    }
                }
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
