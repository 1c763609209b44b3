import Foundation
import Gateway
import Metering
import Testing

/// The billing outbox on both backends: a record's delivery entries are written in its commit, claims
/// lease entries, and delivered, retried and dead entries move as the deliverer says.
@Suite("Outbox conformance")
struct OutboxConformanceTests {
    struct Backend: Sendable, CustomTestStringConvertible {
        var name: String
        var open:
            @Sendable ([String]) async throws -> (store: any Store, ledger: any Ledger, close: @Sendable () -> Void)
        var testDescription: String { name }
    }

    static let backends: [Backend] = [
        Backend(name: "sqlite") { sinks in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-outbox-\(UUID().uuidString)")
                .path
            let store = try GatewayStore(dataDirectory: dir)
            return (
                store, SQLiteLedger(store: store, sinks: sinks), { try? FileManager.default.removeItem(atPath: dir) }
            )
        },
        Backend(name: "postgres") { sinks in
            let (url, drop) = try PostgresTestCluster.freshDatabase()
            let store = try await PostgresStore.open(url: url)
            return (
                store, PostgresLedger(store: store, sinks: sinks),
                {
                    store.close()
                    drop()
                }
            )
        },
    ]

    @Test(
        "entries are written with their records and move through claim, retry, dead and delivery", arguments: backends)
    func lifecycle(_ backend: Backend) async throws {
        let (store, ledger, close) = try await backend.open(["a", "b"])
        defer { close() }
        let start = Date(timeIntervalSince1970: 1_796_000_000)
        let records = (0..<5).map {
            StoreConformanceTests.record(
                tenant: "t", model: "m", at: start.addingTimeInterval(Double($0)), cost: 100, currency: "USD",
                budget: 0,
                free: 0)
        }
        for record in records { try await ledger.append(record) }
        // Storing a record again (a retried batch) adds no second entry.
        try? await ledger.append(records[0])
        var status = try await store.outboxStatus()
        #expect(status.map(\.sink) == ["a", "b"] && status.map(\.pending) == [5, 5] && status.map(\.dead) == [0, 0])

        let now = Date()
        let lease = now.addingTimeInterval(30)
        let claimed = try await store.claimOutbox(sink: "a", limit: 3, now: now, until: lease)
        #expect(claimed.map(\.recordID) == records.prefix(3).map(\.id))
        // Leased: a second claim takes only what is left.
        let rest = try await store.claimOutbox(sink: "a", limit: 10, now: now, until: now.addingTimeInterval(30.5))
        #expect(rest.map(\.recordID) == records.suffix(2).map(\.id))
        let loaded = try await store.outboxRecords(claimed.map(\.recordID))
        #expect(loaded[records[0].id]?.0.cost == records[0].cost)

        // Outcomes under another lease change nothing.
        try await store.outboxDelivered([claimed[0].id], lease: now.addingTimeInterval(30.5))
        try await store.outboxDead(
            claimed[1].id, lease: now.addingTimeInterval(30.5), attempts: 1, status: 400, error: "wrong lease")
        #expect(try await store.outboxStatus().first { $0.sink == "a" }?.pending == 5)
        try await store.outboxDelivered([claimed[0].id], lease: lease)
        try await store.outboxRetry(
            claimed[1].id, lease: lease, attempts: 1, at: now.addingTimeInterval(60), status: 503, error: "busy")
        try await store.outboxDead(claimed[2].id, lease: lease, attempts: 1, status: 400, error: "no such customer")
        // The retried one is not due yet, the dead one never; the leased ones come back after the lease.
        let later = now.addingTimeInterval(31)
        let again = try await store.claimOutbox(sink: "a", limit: 10, now: later, until: later.addingTimeInterval(100))
        #expect(again.map(\.recordID) == records.suffix(2).map(\.id))
        let due = now.addingTimeInterval(61)
        let retried = try await store.claimOutbox(sink: "a", limit: 10, now: due, until: due.addingTimeInterval(30))
        #expect(retried.map(\.recordID) == [records[1].id] && retried.first?.attempts == 1)

        let dead = try await store.deadLetters(sink: "a", limit: 10)
        #expect(dead.map(\.recordID) == [records[2].id] && dead.first?.lastStatus == 400)
        #expect(try await store.retryDead(sink: "a", recordID: nil) == 1)
        status = try await store.outboxStatus()
        #expect(status.first { $0.sink == "a" }?.pending == 4 && status.first { $0.sink == "a" }?.dead == 0)
        #expect(status.first { $0.sink == "b" }?.pending == 5)
    }

    @Test(
        "a deliverer whose lease ran out cannot undo or finish what another deliverer claimed since",
        arguments: backends)
    func lapsedLease(_ backend: Backend) async throws {
        let (store, ledger, close) = try await backend.open(["a"])
        defer { close() }
        let record = StoreConformanceTests.record(
            tenant: "t", model: "m", at: Date(timeIntervalSince1970: 1_796_000_000), cost: 100, currency: "USD",
            budget: 0, free: 0)
        try await ledger.append(record)
        let now = Date()
        let first = now.addingTimeInterval(10)
        let slow = try await store.claimOutbox(sink: "a", limit: 10, now: now, until: first)
        // The first deliverer stalls past its lease; a second claims the entry again.
        let later = now.addingTimeInterval(11)
        let second = later.addingTimeInterval(10)
        let fresh = try await store.claimOutbox(sink: "a", limit: 10, now: later, until: second)
        #expect(slow.map(\.id) == fresh.map(\.id) && fresh.count == 1)
        // The first's late outcomes are refused: the entry stays with the second, not pending again.
        try await store.outboxRetry(slow[0].id, lease: first, attempts: 1, at: later, status: 503, error: "late")
        try await store.outboxDead(slow[0].id, lease: first, attempts: 1, status: 400, error: "late")
        try await store.outboxDelivered([slow[0].id], lease: first)
        #expect(try await store.claimOutbox(sink: "a", limit: 10, now: later, until: second).isEmpty)
        #expect(try await store.deadLetters(sink: "a", limit: 10).isEmpty)
        // The second's outcome counts.
        try await store.outboxDelivered([fresh[0].id], lease: second)
        #expect(try await store.outboxStatus().first { $0.sink == "a" }?.pending ?? 0 == 0)
    }
}
