import Foundation
import Metering

/// Streams billing records out of the ledger, page by page, in CSV or JSON Lines.
///
/// Memory stays constant whatever the number of rows: each page of `pageSize` records is written and
/// dropped before the next is read, and no read transaction is held between pages, so an export of
/// millions of rows never blocks the ledger's writer.
public struct BillingExporter: Sendable {
    let store: any BillingStore
    var pageSize = 1000

    public init(store: any BillingStore) { self.store = store }

    /// Writes the export through `write`, one page of text at a time; returns the number of rows.
    @discardableResult
    public func export(
        _ query: GatewayStore.BillingQuery, format: BillingExportFormat,
        write: (String) async throws -> Void
    ) async throws -> Int {
        let names = try await store.tenantNames()
        if !format.header.isEmpty { try await write(format.header) }
        var rows = 0
        try await store.eachPage(query, size: pageSize) { page in
            var text = ""
            for (_, record) in page { text += format.line(record, tenantName: names[record.tenantID] ?? "") }
            try await write(text)
            rows += page.count
        }
        return rows
    }
}

extension BillingStore {
    /// Every record of `query` in commit order, a page at a time (keyset pagination): memory stays
    /// constant and no read transaction is held between pages. Exports and reports read the ledger so.
    func eachPage(
        _ query: GatewayStore.BillingQuery, size: Int,
        _ body: ([(seq: Int64, record: BillingRecord)]) async throws -> Void
    ) async throws {
        var after: Int64 = 0
        while true {
            let page = try await billingPage(query, afterSeq: after, limit: size)
            guard let last = page.last else { return }
            try await body(page)
            if page.count < size { return }
            after = last.seq
        }
    }
}
