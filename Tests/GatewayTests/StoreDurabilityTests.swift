import Foundation
import GRDB
import Gateway
import GatewayMock
import Metering
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
}
