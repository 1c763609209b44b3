import Foundation
import GRDB

/// A customer of the gateway: usage, quotas and budgets are kept per tenant.
public struct Tenant: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tenants"

    public var id: String
    public var name: String
    public var status: String
    /// IANA time zone used for calendar periods (budgets reset at the tenant's local midnight).
    public var timezone: String
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, name, status, timezone
        case createdAt = "created_at"
    }
}

/// A credential a tenant's application sends. Only its SHA-256 hash is stored; `prefix` identifies it
/// in listings without revealing it.
public struct VirtualKey: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "virtual_keys"

    public var id: String
    public var tenantID: String
    public var name: String?
    public var prefix: String
    public var hash: Data
    public var createdAt: Date
    public var revokedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, name, prefix, hash
        case tenantID = "tenant_id"
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    public var isRevoked: Bool { revokedAt != nil }
}
