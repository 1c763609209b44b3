import Foundation
import GRDB
import Gateway
import GatewayMock
import Metering
import Synchronization
import Testing

/// The ledger's durability setting must hold on the connection that commits. GRDB's WAL setup sets
/// `synchronous = NORMAL` on the pool's writer after opening it, so a setting made any earlier is lost.
@Suite("Store durability settings")
struct StoreDurabilityTests {
    static func writerSynchronous(_ mode: String?) throws -> Int? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sync-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store =
            try mode.map { try GatewayStore(dataDirectory: dir, synchronous: $0) } ?? GatewayStore(dataDirectory: dir)
        return try store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") }
    }

    @Test("the writer commits with synchronous = FULL by default (2), NORMAL (1) when asked")
    func writerSetting() throws {
        #expect(try Self.writerSynchronous(nil) == 2)
        #expect(try Self.writerSynchronous("FULL") == 2)
        #expect(try Self.writerSynchronous("NORMAL") == 1)
    }

    @Test("record ids are rec_ and 32 hex digits, distinct, and increasing within a process")
    func recordIDs() {
        let ids = (0..<1000).map { _ in BillingRecord.newID() }
        #expect(Set(ids).count == ids.count)
        #expect(ids == ids.sorted())
        #expect(ids.allSatisfy { $0.hasPrefix("rec_") && $0.count == 36 && $0.dropFirst(4).allSatisfy(\.isHexDigit) })
    }

    @Test("ledger_sync normal: concurrent records are all stored, in shared commits")
    func inPlaceCommits() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inplace-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try GatewayStore(dataDirectory: dir, synchronous: "NORMAL")
        let commits = Mutex((count: 0, records: 0))
        let ledger = SQLiteLedger(store: store) { stats in
            commits.withLock {
                $0.count += 1
                $0.records += stats.records
            }
        }
        let start = Date(timeIntervalSince1970: 1_796_000_000)
        let records = (0..<400).map {
            StoreConformanceTests.record(
                tenant: "t\($0 % 7)", model: "m", at: start.addingTimeInterval(Double($0)), cost: Int64($0),
                currency: "USD", budget: 0, free: 0)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for record in records { group.addTask { try await ledger.append(record) } }
            try await group.waitForAll()
        }
        let back = try await store.billingPage(
            .init(from: .distantPast, to: .distantFuture), afterSeq: 0, limit: 1000
        ).map(\.record)
        #expect(Set(back.map(\.id)) == Set(records.map(\.id)))
        #expect(back.count == records.count)
        let (count, stored) = commits.withLock { $0 }
        #expect(stored == records.count)
        #expect(count < records.count, "concurrent records should share commits")
    }
}
