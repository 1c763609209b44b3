import Foundation
import GRDB
import Metering

/// The outbox in the embedded store: one process delivers, so a claim is a write transaction that marks
/// the entries it takes.
extension GatewayStore: OutboxStore {
    public func claimOutbox(sink: String, limit: Int, now: Date, until: Date) async throws -> [(
        id: Int64, recordID: String, attempts: Int
    )] {
        let nowMicros = SQLiteLedger.microseconds(now)
        return try await pool.write { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT id, record_id, attempts FROM billing_outbox
                    WHERE sink = ? AND state = 'pending' AND next_attempt_at <= ? AND claimed_until <= ?
                    ORDER BY id LIMIT ?
                    """, arguments: [sink, nowMicros, nowMicros, limit])
            let claimed = rows.map {
                (id: $0["id"] as Int64, recordID: $0["record_id"] as String, attempts: $0["attempts"] as Int)
            }
            if !claimed.isEmpty {
                let marks = Array(repeating: "?", count: claimed.count).joined(separator: ",")
                try db.execute(
                    sql: "UPDATE billing_outbox SET claimed_until = ? WHERE id IN (\(marks))",
                    arguments: StatementArguments([SQLiteLedger.microseconds(until)] + claimed.map(\.id)))
            }
            return claimed
        }
    }

    public func outboxRecords(_ ids: [String]) async throws -> [String: (BillingRecord, String, String?)] {
        guard !ids.isEmpty else { return [:] }
        return try await pool.read { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
            var out: [String: (BillingRecord, String, String?)] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT r.*, t.name AS tenant_name, t.stripe_customer_id AS tenant_stripe
                    FROM billing_records r LEFT JOIN tenants t ON t.id = r.tenant_id WHERE r.id IN (\(marks))
                    """, arguments: StatementArguments(ids))
            {
                let record = Self.record(row)
                out[record.id] = (record, row["tenant_name"] ?? "", row["tenant_stripe"])
            }
            return out
        }
    }

    public func outboxDelivered(_ ids: [Int64], lease: Date) async throws {
        guard !ids.isEmpty else { return }
        try await pool.write { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
            try db.execute(
                sql: "DELETE FROM billing_outbox WHERE claimed_until = ? AND id IN (\(marks))",
                arguments: StatementArguments([SQLiteLedger.microseconds(lease)] + ids))
        }
    }

    public func outboxRetry(
        _ id: Int64, lease: Date, attempts: Int, at: Date, status: Int?, error: String
    ) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE billing_outbox SET attempts = ?, next_attempt_at = ?, claimed_until = 0, last_status = ?,
                        last_error = ? WHERE id = ? AND claimed_until = ?
                    """,
                arguments: [
                    attempts, SQLiteLedger.microseconds(at), status, error, id, SQLiteLedger.microseconds(lease),
                ])
        }
    }

    public func outboxDead(_ id: Int64, lease: Date, attempts: Int, status: Int?, error: String) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE billing_outbox SET state = 'dead', attempts = ?, claimed_until = 0, last_status = ?,
                        last_error = ? WHERE id = ? AND claimed_until = ?
                    """, arguments: [attempts, status, error, id, SQLiteLedger.microseconds(lease)])
        }
    }

    public func outboxStatus() async throws -> [OutboxSinkStatus] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT sink, SUM(state = 'pending') AS pending, SUM(state = 'dead') AS dead,
                        MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest
                    FROM billing_outbox GROUP BY sink ORDER BY sink
                    """
            ).map { row in
                OutboxSinkStatus(
                    sink: row["sink"], pending: row["pending"] ?? 0, dead: row["dead"] ?? 0,
                    oldestPending: (row["oldest"] as Int64?).map { Date(timeIntervalSince1970: Double($0) / 1e6) })
            }
        }
    }

    public func deadLetters(sink: String?, limit: Int) async throws -> [DeadLetter] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT sink, record_id, attempts, last_status, last_error FROM billing_outbox
                    WHERE state = 'dead' AND (? IS NULL OR sink = ?) ORDER BY id LIMIT ?
                    """, arguments: [sink, sink, limit]
            ).map { row in
                DeadLetter(
                    sink: row["sink"], recordID: row["record_id"], attempts: row["attempts"],
                    lastStatus: row["last_status"], lastError: row["last_error"])
            }
        }
    }

    public func retryDead(sink: String?, recordID: String?) async throws -> Int {
        let now = SQLiteLedger.microseconds(Date())
        return try await pool.write { db in
            try db.execute(
                sql: """
                    UPDATE billing_outbox SET state = 'pending', next_attempt_at = ?, claimed_until = 0
                    WHERE state = 'dead' AND (? IS NULL OR sink = ?) AND (? IS NULL OR record_id = ?)
                    """, arguments: [now, sink, sink, recordID, recordID])
            return db.changesCount
        }
    }
}
