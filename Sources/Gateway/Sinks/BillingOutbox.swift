import Foundation
import Metering

/// The transactional outbox of billing sinks: a record's delivery entries (one per configured sink) are
/// written in the same commit as the record, so a crash between the commit and the delivery loses
/// nothing; a deliverer claims due entries, sends them and deletes them once the sink accepted them.
/// Entries a sink refuses for good stay, marked `dead`, until an operator retries them.
enum BillingOutbox {
    static let sqliteSchema = """
        CREATE TABLE billing_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            record_id TEXT NOT NULL,
            sink TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            last_error TEXT,
            last_status INTEGER,
            claimed_until INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            UNIQUE (record_id, sink)
        );
        CREATE INDEX billing_outbox_due ON billing_outbox(sink, state, next_attempt_at);
        """

    static let postgresSchema = """
        CREATE TABLE billing_outbox (
            id bigserial PRIMARY KEY,
            record_id text NOT NULL,
            sink text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at bigint NOT NULL,
            state text NOT NULL DEFAULT 'pending',
            last_error text,
            last_status integer,
            claimed_until bigint NOT NULL DEFAULT 0,
            created_at bigint NOT NULL,
            UNIQUE (record_id, sink)
        )
        """
}

/// A delivery entry claimed for sending, with its record and the tenant's attributes a sink needs.
struct OutboxEntry: Sendable {
    var id: Int64
    var attempts: Int
    var record: BillingRecord
    var tenantName: String
    var stripeCustomerID: String?
}

/// One sink's backlog.
public struct OutboxSinkStatus: Sendable, Equatable {
    public var sink: String
    public var pending: Int
    public var dead: Int
    /// When the oldest pending entry was written (its record's commit).
    public var oldestPending: Date?
}

/// An entry a sink refused for good.
public struct DeadLetter: Sendable, Equatable {
    public var sink: String
    public var recordID: String
    public var attempts: Int
    public var lastStatus: Int?
    public var lastError: String?
}

/// What a store does for the outbox; SQLite and PostgreSQL both implement it.
public protocol OutboxStore: Sendable {
    /// Claims up to `limit` due pending entries of `sink` until `until`: no other deliverer (another
    /// replica) takes them meanwhile. A deliverer that dies leaves them to be claimed again after that.
    /// `until` is also the claim's lease: the outcomes below change an entry only while it is still held
    /// under that lease, so a deliverer whose lease ran out (and whose entries another has claimed since)
    /// changes nothing.
    func claimOutbox(sink: String, limit: Int, now: Date, until: Date) async throws -> [(
        id: Int64, recordID: String, attempts: Int
    )]
    /// The records with these ids, with their tenants' names and Stripe customer ids.
    func outboxRecords(_ ids: [String]) async throws -> [String: (BillingRecord, String, String?)]
    /// Delivered: the entries leave the outbox.
    func outboxDelivered(_ ids: [Int64], lease: Date) async throws
    /// Back to pending after a failed attempt, due again at `at`.
    func outboxRetry(_ id: Int64, lease: Date, attempts: Int, at: Date, status: Int?, error: String) async throws
    /// Refused for good: parked until an operator retries it.
    func outboxDead(_ id: Int64, lease: Date, attempts: Int, status: Int?, error: String) async throws
    func outboxStatus() async throws -> [OutboxSinkStatus]
    func deadLetters(sink: String?, limit: Int) async throws -> [DeadLetter]
    /// Dead entries (of `sink`, or one record's) back to pending, due now; returns how many.
    func retryDead(sink: String?, recordID: String?) async throws -> Int
}
