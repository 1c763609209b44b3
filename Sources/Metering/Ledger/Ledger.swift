/// Where billing records go. The gateway awaits `append` before the last byte of a response leaves, so
/// an implementation returns only once the record is durable.
public protocol Ledger: Sendable {
    func append(_ record: BillingRecord) async throws
}
