import Foundation
import Metering

/// What the gateway keeps, as seams a second backend implements (the SQLite store is the first). Each
/// protocol is one concern; `StoreConformanceTests` is the behaviour every backend must show.

/// Tenants and their own settings (plan, time zone, currency, status, budget and quota overrides).
public protocol TenantStore: Sendable {
    func createTenant(name: String, timezone: String) async throws -> Tenant
    func tenants() async throws -> [Tenant]
    /// By id or by name.
    func tenant(_ idOrName: String) async throws -> Tenant
    func updateTenant(_ idOrName: String, _ update: GatewayStore.TenantUpdate) async throws -> Tenant
    /// Sets, or with `limit: nil` clears, the tenant's own budget.
    func setBudget(_ idOrName: String, limit: String?, currency: String?, period: CalendarPeriod.Kind, soft: Bool)
        async throws -> Tenant
    /// Sets, or with `amount: nil` clears, the tenant's own free allowance (tokens, or credit in `currency`).
    func setQuota(_ idOrName: String, amount: String?, credit currency: String?, period: CalendarPeriod.Kind)
        async throws -> Tenant
}

extension TenantStore {
    @discardableResult
    public func clearBudget(_ idOrName: String) async throws -> Tenant {
        try await setBudget(idOrName, limit: nil, currency: nil, period: .month, soft: false)
    }

    @discardableResult
    public func clearQuota(_ idOrName: String) async throws -> Tenant {
        try await setQuota(idOrName, amount: nil, credit: nil, period: .month)
    }
}

/// Virtual keys, stored as hashes, and their own rate limits.
public protocol KeyStore: Sendable {
    /// The new key and its secret, which is returned this once and never stored.
    func createKey(tenant idOrName: String, name: String?) async throws -> (key: VirtualKey, secret: String)
    func keys(tenant idOrName: String?) async throws -> [VirtualKey]
    /// By id or by an unambiguous prefix.
    func revokeKey(_ idOrPrefix: String) async throws -> VirtualKey
    func setKeyLimits(_ idOrPrefix: String, limits: RateLimits) async throws -> VirtualKey
    /// Moves whenever a key or a tenant changes, so running gateways know to reload.
    func authVersion() async throws -> Int
    /// Every key not revoked, with its tenant.
    func activeCredentials() async throws -> [(key: VirtualKey, tenant: Tenant)]
    func activeCredential(hash: Data) async throws -> (key: VirtualKey, tenant: Tenant)?
}

/// The ledger's read side (the write side is Metering's `Ledger`): pages, sums, and the totals that
/// rebuild the policy counters.
public protocol BillingStore: Sendable {
    /// One page in commit order after `afterSeq` (keyset pagination).
    func billingPage(_ query: GatewayStore.BillingQuery, afterSeq: Int64, limit: Int) async throws
        -> [(seq: Int64, record: BillingRecord)]
    func usageTotals(_ query: GatewayStore.BillingQuery) async throws -> [GatewayStore.UsageTotal]
    func usageByModel(_ query: GatewayStore.BillingQuery) async throws -> [(
        model: String, total: GatewayStore.UsageTotal
    )]
    func tenantNames() async throws -> [String: String]
    /// A policy counter's settled total, summed from the records.
    func counterTotal(_ key: PolicyEngine.CounterKey) async throws -> Int64
    /// Whether the store answers (readiness).
    func ping() async throws
}

/// Everything the gateway's adapters need from one backend.
public typealias Store = TenantStore & KeyStore & BillingStore & OutboxStore

extension GatewayStore: TenantStore, KeyStore, BillingStore {}

/// A ledger that gathers concurrent records into shared commits, with what `/metrics` shows of it.
public protocol GroupCommitLedger: Ledger {
    /// Records waiting for the next commit.
    var queueDepth: Int { get }
}

extension SQLiteLedger: GroupCommitLedger {}
extension PostgresLedger: GroupCommitLedger {}

/// The store a gateway runs on, and how to make its ledger: the embedded SQLite store in a data
/// directory, or PostgreSQL shared by several replicas.
public struct StoreBackend: Sendable {
    public let store: any Store
    let makeLedger:
        @Sendable (
            _ reservationTTL: TimeInterval, _ sinks: [String],
            _ onCommit: @escaping @Sendable (SQLiteLedger.CommitStats) -> Void
        ) -> any GroupCommitLedger
    /// Where the records live, for the start-up log line (never a password).
    public let location: String

    public static func sqlite(_ store: GatewayStore) -> StoreBackend {
        StoreBackend(
            store: store, makeLedger: { SQLiteLedger(store: store, sinks: $1, onCommit: $2) }, location: store.path)
    }

    public static func postgres(_ store: PostgresStore, location: String) -> StoreBackend {
        StoreBackend(
            store: store, makeLedger: { PostgresLedger(store: store, reservationTTL: $0, sinks: $1, onCommit: $2) },
            location: location)
    }
}
