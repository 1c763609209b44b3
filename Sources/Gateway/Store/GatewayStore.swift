import Crypto
import Foundation
import GRDB

/// Errors the store reports to commands and the admin surface.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case conflict(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound(let s), .conflict(let s), .invalid(let s): return s
        }
    }
}

/// The embedded SQLite store: one file in WAL mode under the data directory.
///
/// Readers never block the writer, so the gateway keeps serving while a CLI in another process creates
/// or revokes keys against the same file.
public final class GatewayStore: Sendable {
    public let pool: DatabasePool
    public let path: String
    /// Whether each commit is synced (`FULL`) or only written (`NORMAL`).
    public let syncsEachCommit: Bool
    let checkpointer: WALCheckpointer
    /// How long a write waits for another process's lock on the file.
    static let busyTimeoutMilliseconds: Int32 = 5000

    /// `synchronous` is `FULL` (every commit synced; the default) or `NORMAL` (see
    /// `ServerConfig.ledgerSync`).
    public init(dataDirectory: String, synchronous: String = "FULL") throws {
        precondition(synchronous == "FULL" || synchronous == "NORMAL")
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        self.path = (dataDirectory as NSString).appendingPathComponent("gateway.sqlite")
        var config = Configuration()
        config.busyMode = .timeout(Double(Self.busyTimeoutMilliseconds) / 1000)
        self.pool = try DatabasePool(path: path, configuration: config)
        self.syncsEachCommit = synchronous == "FULL"
        let checkpointer = WALCheckpointer()
        self.checkpointer = checkpointer
        // FULL (default): a commit is on disk when it returns, so a record survives power loss too.
        // The ledger's group commit makes concurrent requests share each sync. Set on the writer after
        // the pool opens: GRDB's WAL setup sets NORMAL on it last, which would override a setting made
        // in `prepareDatabase`. (Readers never commit, so their setting does not matter.)
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            checkpointer.install(on: db)
        }
        try Self.migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-tenants-and-keys") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tenants (
                        id TEXT PRIMARY KEY,
                        name TEXT NOT NULL UNIQUE,
                        status TEXT NOT NULL DEFAULT 'active',
                        timezone TEXT NOT NULL DEFAULT 'UTC',
                        created_at DATETIME NOT NULL
                    );
                    CREATE TABLE virtual_keys (
                        id TEXT PRIMARY KEY,
                        tenant_id TEXT NOT NULL REFERENCES tenants(id),
                        name TEXT,
                        prefix TEXT NOT NULL,
                        hash BLOB NOT NULL UNIQUE,
                        created_at DATETIME NOT NULL,
                        revoked_at DATETIME
                    );
                    CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant_id);
                    -- A counter bumped on every change that affects authentication, so a running gateway
                    -- (polling one row) notices a revocation made by another process within its poll interval.
                    CREATE TABLE auth_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
                    INSERT INTO auth_version VALUES (1, 0);
                    CREATE TRIGGER keys_ins AFTER INSERT ON virtual_keys BEGIN UPDATE auth_version SET version = version + 1; END;
                    CREATE TRIGGER keys_upd AFTER UPDATE ON virtual_keys BEGIN UPDATE auth_version SET version = version + 1; END;
                    CREATE TRIGGER keys_del AFTER DELETE ON virtual_keys BEGIN UPDATE auth_version SET version = version + 1; END;
                    CREATE TRIGGER tenants_upd AFTER UPDATE ON tenants BEGIN UPDATE auth_version SET version = version + 1; END;
                    """)
        }
        m.registerMigration("v2-billing-records") { db in
            try db.execute(
                sql: """
                    -- One row per request that reached the forward stage or was refused after authentication.
                    -- Times are microseconds since the Unix epoch (UTC); money is integer nano-units.
                    -- No foreign keys: a record is never refused for the sake of referential tidiness.
                    CREATE TABLE billing_records (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        request_id TEXT NOT NULL,
                        tenant_id TEXT NOT NULL,
                        key_id TEXT NOT NULL,
                        started_at INTEGER NOT NULL,
                        ended_at INTEGER NOT NULL,
                        ttft_ms INTEGER,
                        endpoint TEXT NOT NULL,
                        model TEXT NOT NULL,
                        upstream_model TEXT NOT NULL,
                        provider TEXT NOT NULL,
                        stream INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        http_status INTEGER NOT NULL,
                        error TEXT,
                        prompt_tokens INTEGER NOT NULL,
                        cached_tokens INTEGER NOT NULL,
                        cache_write_tokens INTEGER NOT NULL,
                        completion_tokens INTEGER NOT NULL,
                        reasoning_tokens INTEGER NOT NULL,
                        usage_source TEXT NOT NULL,
                        local_prompt_tokens INTEGER NOT NULL,
                        local_completion_tokens INTEGER NOT NULL,
                        local_estimate INTEGER NOT NULL,
                        price_entry TEXT,
                        currency TEXT,
                        cost_nanos INTEGER
                    );
                    CREATE INDEX billing_records_started ON billing_records(started_at);
                    CREATE INDEX billing_records_tenant_started ON billing_records(tenant_id, started_at);
                    """)
        }
        m.registerMigration("v3-policies") { db in
            try db.execute(
                sql: """
                    ALTER TABLE tenants ADD COLUMN plan TEXT;
                    ALTER TABLE tenants ADD COLUMN currency TEXT;
                    ALTER TABLE tenants ADD COLUMN budget_limit TEXT;
                    ALTER TABLE tenants ADD COLUMN budget_currency TEXT;
                    ALTER TABLE tenants ADD COLUMN budget_period TEXT;
                    ALTER TABLE tenants ADD COLUMN budget_soft BOOLEAN;
                    ALTER TABLE virtual_keys ADD COLUMN requests_per_minute INTEGER;
                    ALTER TABLE virtual_keys ADD COLUMN tokens_per_minute INTEGER;
                    ALTER TABLE virtual_keys ADD COLUMN concurrent INTEGER;
                    -- The admit/settle trail of each record: the estimate that was reserved, and how the
                    -- cost split into free quota (periodic and grant) and budget charge.
                    ALTER TABLE billing_records ADD COLUMN estimated_tokens INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE billing_records ADD COLUMN estimated_cost_nanos INTEGER;
                    ALTER TABLE billing_records ADD COLUMN free_units INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE billing_records ADD COLUMN grant_units INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE billing_records ADD COLUMN free_cost_nanos INTEGER;
                    ALTER TABLE billing_records ADD COLUMN charged_nanos INTEGER;
                    ALTER TABLE billing_records ADD COLUMN budget_currency TEXT;
                    ALTER TABLE billing_records ADD COLUMN budget_charge_nanos INTEGER;
                    """)
        }
        m.registerMigration("v4-tenant-quota") { db in
            try db.execute(
                sql: """
                    ALTER TABLE tenants ADD COLUMN quota_amount TEXT;
                    ALTER TABLE tenants ADD COLUMN quota_unit TEXT;
                    ALTER TABLE tenants ADD COLUMN quota_currency TEXT;
                    ALTER TABLE tenants ADD COLUMN quota_period TEXT;
                    """)
        }
        m.registerMigration("v5-billing-outbox") { db in
            try db.execute(sql: "ALTER TABLE tenants ADD COLUMN stripe_customer_id TEXT")
            try db.execute(sql: BillingOutbox.sqliteSchema)
        }
        m.registerMigration("v6-attempts") { db in
            try db.execute(
                sql: """
                    ALTER TABLE billing_records ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE billing_records ADD COLUMN upstream_key_id TEXT;
                    ALTER TABLE billing_records ADD COLUMN failed_attempts TEXT;
                    """)
        }
        return m
    }

    /// Cheap check that the database answers; `/readyz` uses it.
    public func ping() throws {
        _ = try pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    // MARK: Tenants

    public func createTenant(name: String, timezone: String = "UTC") throws -> Tenant {
        guard !name.isEmpty else { throw StoreError.invalid("a tenant needs a name") }
        guard TimeZone(identifier: timezone) != nil else {
            throw StoreError.invalid("unknown time zone '\(timezone)'")
        }
        let tenant = Tenant(
            id: "ten_" + Self.randomToken(length: 16), name: name, timezone: timezone, createdAt: Date())
        do {
            try pool.write { db in try tenant.insert(db) }
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StoreError.conflict("a tenant named '\(name)' already exists")
        }
        return tenant
    }

    public func tenants() throws -> [Tenant] {
        try pool.read { db in try Tenant.order(Column("created_at"), Column("name")).fetchAll(db) }
    }

    /// Finds a tenant by id or by name.
    public func tenant(_ idOrName: String) throws -> Tenant {
        let found = try pool.read { db in
            try Tenant.filter(Column("id") == idOrName || Column("name") == idOrName).fetchOne(db)
        }
        guard let found else { throw StoreError.notFound("no tenant '\(idOrName)'") }
        return found
    }

    // MARK: Virtual keys

    /// Creates a key and returns it with its secret, which is never stored and cannot be shown again.
    public func createKey(tenant idOrName: String, name: String? = nil) throws -> (key: VirtualKey, secret: String) {
        let tenant = try tenant(idOrName)
        let secret = "sk-gw-" + Self.randomToken(length: 40)
        let key = VirtualKey(
            id: "key_" + Self.randomToken(length: 16), tenantID: tenant.id, name: name,
            prefix: String(secret.prefix(12)), hash: Self.hash(secret: secret), createdAt: Date(), revokedAt: nil,
            requestsPerMinute: nil, tokensPerMinute: nil, concurrent: nil)
        try pool.write { db in try key.insert(db) }
        return (key, secret)
    }

    public func keys(tenant idOrName: String? = nil) throws -> [VirtualKey] {
        let tenantID = try idOrName.map { try tenant($0).id }
        return try pool.read { db in
            var request = VirtualKey.order(Column("created_at"), Column("id"))
            if let tenantID { request = request.filter(Column("tenant_id") == tenantID) }
            return try request.fetchAll(db)
        }
    }

    /// Revokes a key named by id or by its displayed prefix.
    @discardableResult
    public func revokeKey(_ idOrPrefix: String) throws -> VirtualKey {
        try pool.write { db in
            var key = try Self.uniqueKey(idOrPrefix, db)
            if key.revokedAt == nil {
                key.revokedAt = Date()
                try key.update(db)
            }
            return key
        }
    }

    /// The one key with this id or displayed prefix.
    static func uniqueKey(_ idOrPrefix: String, _ db: Database) throws -> VirtualKey {
        let matches = try VirtualKey.filter(Column("id") == idOrPrefix || Column("prefix") == idOrPrefix).fetchAll(db)
        guard let key = matches.first else { throw StoreError.notFound("no key '\(idOrPrefix)'") }
        guard matches.count == 1 else {
            throw StoreError.conflict("'\(idOrPrefix)' matches several keys; use the key id")
        }
        return key
    }

    public func authVersion() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT version FROM auth_version") ?? 0 }
    }

    /// Every unrevoked key with its tenant (suspended tenants included, so they get a clear 403), for
    /// the in-memory key directory.
    public func activeCredentials() throws -> [(key: VirtualKey, tenant: Tenant)] {
        try pool.read { db in
            let tenants = Dictionary(
                uniqueKeysWithValues: try Tenant.fetchAll(db).map { ($0.id, $0) })
            return try VirtualKey.filter(Column("revoked_at") == nil).fetchAll(db).compactMap { key in
                tenants[key.tenantID].map { (key, $0) }
            }
        }
    }

    /// The usable key with this hash, if any.
    public func activeCredential(hash: Data) throws -> (key: VirtualKey, tenant: Tenant)? {
        try pool.read { db in
            guard let key = try VirtualKey.filter(Column("hash") == hash && Column("revoked_at") == nil).fetchOne(db),
                let tenant = try Tenant.filter(Column("id") == key.tenantID).fetchOne(
                    db)
            else { return nil }
            return (key, tenant)
        }
    }

    // MARK: Helpers

    public static func hash(secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }

    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    /// Random base62 text from the system CSPRNG.
    static func randomToken(length: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }
}
