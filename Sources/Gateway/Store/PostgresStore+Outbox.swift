import Foundation
import Metering
import PostgresNIO

/// The outbox on PostgreSQL: several replicas deliver, and a claim takes rows no other transaction holds
/// (`FOR UPDATE SKIP LOCKED`) and leases them, so no two replicas send an entry at the same time.
extension PostgresStore: OutboxStore {
    public func claimOutbox(sink: String, limit: Int, now: Date, until: Date) async throws -> [(
        id: Int64, recordID: String, attempts: Int
    )] {
        let nowMicros = SQLiteLedger.microseconds(now)
        let rows = try await client.query(
            """
            UPDATE billing_outbox SET claimed_until = \(SQLiteLedger.microseconds(until))
            WHERE id IN (
                SELECT id FROM billing_outbox
                WHERE sink = \(sink) AND state = 'pending' AND next_attempt_at <= \(nowMicros)
                  AND claimed_until <= \(nowMicros)
                ORDER BY id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
            RETURNING id, record_id, attempts
            """, logger: logger)
        var out: [(id: Int64, recordID: String, attempts: Int)] = []
        for try await (id, record, attempts) in rows.decode((Int64, String, Int32).self) {
            out.append((id, record, Int(attempts)))
        }
        return out.sorted { $0.id < $1.id }
    }

    public func outboxRecords(_ ids: [String]) async throws -> [String: (BillingRecord, String, String?)] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await client.query(
            """
            SELECT r.*, t.name AS tenant_name, t.stripe_customer_id AS tenant_stripe
            FROM billing_records r LEFT JOIN tenants t ON t.id = r.tenant_id WHERE r.id = ANY(\(ids)::text[])
            """, logger: logger)
        var out: [String: (BillingRecord, String, String?)] = [:]
        for try await row in rows {
            let record = try PostgresBillingRow.record(row)
            let r = row.makeRandomAccess()
            out[record.id] = (
                record, try r["tenant_name"].decode(String?.self) ?? "", try r["tenant_stripe"].decode(String?.self)
            )
        }
        return out
    }

    public func outboxDelivered(_ ids: [Int64], lease: Date) async throws {
        guard !ids.isEmpty else { return }
        _ = try await client.query(
            """
            DELETE FROM billing_outbox
            WHERE id = ANY(\(ids)::int8[]) AND claimed_until = \(SQLiteLedger.microseconds(lease))
            """, logger: logger)
    }

    public func outboxRetry(
        _ id: Int64, lease: Date, attempts: Int, at: Date, status: Int?, error: String
    ) async throws {
        _ = try await client.query(
            """
            UPDATE billing_outbox SET attempts = \(Int32(clamping: attempts)),
                next_attempt_at = \(SQLiteLedger.microseconds(at)), claimed_until = 0,
                last_status = \(status.map { Int32(clamping: $0) }), last_error = \(error)
            WHERE id = \(id) AND claimed_until = \(SQLiteLedger.microseconds(lease))
            """, logger: logger)
    }

    public func outboxDead(_ id: Int64, lease: Date, attempts: Int, status: Int?, error: String) async throws {
        _ = try await client.query(
            """
            UPDATE billing_outbox SET state = 'dead', attempts = \(Int32(clamping: attempts)), claimed_until = 0,
                last_status = \(status.map { Int32(clamping: $0) }), last_error = \(error)
            WHERE id = \(id) AND claimed_until = \(SQLiteLedger.microseconds(lease))
            """, logger: logger)
    }

    public func outboxStatus() async throws -> [OutboxSinkStatus] {
        let rows = try await client.query(
            """
            SELECT sink, count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead'),
                min(created_at) FILTER (WHERE state = 'pending')
            FROM billing_outbox GROUP BY sink ORDER BY sink
            """, logger: logger)
        var out: [OutboxSinkStatus] = []
        for try await (sink, pending, dead, oldest) in rows.decode((String, Int64, Int64, Int64?).self) {
            out.append(
                OutboxSinkStatus(
                    sink: sink, pending: Int(pending), dead: Int(dead),
                    oldestPending: oldest.map { Date(timeIntervalSince1970: Double($0) / 1e6) }))
        }
        return out
    }

    public func deadLetters(sink: String?, limit: Int) async throws -> [DeadLetter] {
        let rows = try await client.query(
            """
            SELECT sink, record_id, attempts, last_status, last_error FROM billing_outbox
            WHERE state = 'dead' AND (\(sink)::text IS NULL OR sink = \(sink)) ORDER BY id LIMIT \(limit)
            """, logger: logger)
        var out: [DeadLetter] = []
        for try await (s, record, attempts, status, error) in rows.decode((String, String, Int32, Int32?, String?).self)
        {
            out.append(
                DeadLetter(
                    sink: s, recordID: record, attempts: Int(attempts), lastStatus: status.map(Int.init),
                    lastError: error
                ))
        }
        return out
    }

    public func retryDead(sink: String?, recordID: String?) async throws -> Int {
        let rows = try await client.query(
            """
            UPDATE billing_outbox SET state = 'pending', next_attempt_at = \(SQLiteLedger.microseconds(Date())),
                claimed_until = 0
            WHERE state = 'dead' AND (\(sink)::text IS NULL OR sink = \(sink))
              AND (\(recordID)::text IS NULL OR record_id = \(recordID))
            RETURNING id
            """, logger: logger)
        var n = 0
        for try await _ in rows.decode(Int64.self) { n += 1 }
        return n
    }
}
