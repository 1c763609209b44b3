import Foundation
import Logging
import Metering
import NIOCore
import PostgresNIO
import Synchronization

/// The shared store for several replicas: tenants, hashed keys, limits, overrides and the billing ledger
/// in PostgreSQL, with the same columns and integer units as the SQLite store (`docs/scale-out.md`).
///
/// Schema migrations are numbered and forward-only; they run at open under an advisory lock, so replicas
/// that start together apply each one once.
public final class PostgresStore: TenantStore, KeyStore, BillingStore, Sendable {
    let client: PostgresClient
    private let runner: Task<Void, Never>
    let logger: Logger

    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`), starts the pool and brings
    /// the schema up to date.
    public static func open(
        url: String, logger: Logger = Logger(label: "gateway.postgres"), connectTimeout: Duration = .seconds(30),
        migrateThrough version: Int = .max
    ) async throws -> PostgresStore {
        let store = try PostgresStore(configuration: try Self.configuration(url), logger: logger)
        do {
            // The pool retries a database it cannot reach; a start-up that cannot reach it says so.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.migrate(through: version) }
                group.addTask {
                    try await Task.sleep(for: connectTimeout)
                    throw StoreError.invalid("no answer from the database within \(connectTimeout)")
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            store.close()
            throw error
        }
        return store
    }

    private init(configuration: PostgresClient.Configuration, logger: Logger) throws {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        runner = Task { await client.run() }
    }

    /// Stops the pool; queries made after this fail.
    public func close() { runner.cancel() }

    static func configuration(_ url: String) throws -> PostgresClient.Configuration {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme,
            scheme == "postgres" || scheme == "postgresql", let host = parts.host, !host.isEmpty
        else { throw StoreError.invalid("a database URL looks like postgres://user:password@host:5432/database") }
        let database = String(parts.path.drop { $0 == "/" })
        let sslMode = parts.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        default: tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: host, port: parts.port ?? 5432, username: parts.user ?? "postgres",
            password: parts.password?.removingPercentEncoding, database: database.isEmpty ? nil : database, tls: tls)
        configuration.options.maximumConnections = 16
        // Plans made for each execution: a cached generic plan, chosen while a table was small, kept
        // scanning it whole as it grew and churned (admission latency rose from 2 to 18 ms in a run).
        configuration.options.additionalStartupParameters = [("plan_cache_mode", "force_custom_plan")]
        return configuration
    }

    /// Runs `body` in a transaction; a store error from `body` comes out as itself, not wrapped.
    func inTransaction<T: Sendable>(
        _ body: nonisolated(nonsending) (PostgresConnection) async throws -> sending T
    ) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError as? StoreError { throw inner }
            throw error
        }
    }

    public func ping() async throws {
        _ = try await client.query("SELECT 1", logger: logger).collect()
    }

    // MARK: Tenants

    static let tenantColumns =
        "id, name, status, timezone, created_at, plan, currency, budget_limit, budget_currency, budget_period, budget_soft, quota_amount, quota_unit, quota_currency, quota_period, stripe_customer_id"

    static func tenant(_ row: PostgresRow) throws -> Tenant {
        let r = row.makeRandomAccess()
        let currency = try r["currency"].decode(String?.self)
        var tenant = Tenant(
            id: try r["id"].decode(String.self), name: try r["name"].decode(String.self),
            status: Tenant.Status(rawValue: try r["status"].decode(String.self)) ?? .active,
            timezone: try r["timezone"].decode(String.self), createdAt: try r["created_at"].decode(Date.self),
            plan: try r["plan"].decode(String?.self), currency: currency)
        tenant.stripeCustomerID = try r["stripe_customer_id"].decode(String?.self)
        func period(_ column: String) throws -> CalendarPeriod.Kind {
            try r[column].decode(String?.self).flatMap(CalendarPeriod.Kind.init(rawValue:)) ?? .month
        }
        if let text = try r["budget_limit"].decode(String?.self), let nanos = Money.parseNanos(text) {
            let budgetCurrency = try r["budget_currency"].decode(String?.self) ?? currency ?? "USD"
            tenant.budget = Tenant.BudgetOverride(
                limit: Money(nanos: nanos, currency: budgetCurrency), period: try period("budget_period"),
                soft: try r["budget_soft"].decode(Bool?.self) ?? false)
        }
        if let text = try r["quota_amount"].decode(String?.self) {
            let credit = try r["quota_unit"].decode(String?.self) == "credit"
            let unit: FreeQuota.Unit =
                credit ? .credit(currency: try r["quota_currency"].decode(String?.self) ?? "USD") : .tokens
            if let amount = credit ? Money.parseNanos(text) : Int64(text) {
                tenant.quota = Tenant.QuotaOverride(amount: amount, unit: unit, period: try period("quota_period"))
            }
        }
        return tenant
    }

    public func createTenant(name: String, timezone: String) async throws -> Tenant {
        guard !name.isEmpty else { throw StoreError.invalid("a tenant needs a name") }
        guard TimeZone(identifier: timezone) != nil else { throw StoreError.invalid("unknown time zone '\(timezone)'") }
        // Stored to the microsecond, returned as stored.
        let created = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
        let tenant = Tenant(
            id: "ten_" + GatewayStore.randomToken(length: 16), name: name, timezone: timezone, createdAt: created)
        do {
            _ = try await client.query(
                """
                INSERT INTO tenants (id, name, status, timezone, created_at)
                VALUES (\(tenant.id), \(name), 'active', \(timezone), \(created))
                """, logger: logger)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.conflict("a tenant named '\(name)' already exists")
        }
        return tenant
    }

    public func tenants() async throws -> [Tenant] {
        try await client.query(
            PostgresQuery(unsafeSQL: "SELECT \(Self.tenantColumns) FROM tenants ORDER BY created_at, name"),
            logger: logger
        ).collect().map(Self.tenant)
    }

    public func tenant(_ idOrName: String) async throws -> Tenant {
        var query = PostgresQuery(
            unsafeSQL:
                "SELECT \(Self.tenantColumns) FROM tenants WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1")
        query.binds.append(idOrName)
        guard let row = try await client.query(query, logger: logger).collect().first else {
            throw StoreError.notFound("no tenant '\(idOrName)'")
        }
        return try Self.tenant(row)
    }

    public func updateTenant(_ idOrName: String, _ update: GatewayStore.TenantUpdate) async throws -> Tenant {
        try await modifyTenant(idOrName, try GatewayStore.change(update))
    }

    public func setBudget(
        _ idOrName: String, limit: String?, currency: String?, period: CalendarPeriod.Kind, soft: Bool
    ) async throws -> Tenant {
        try await modifyTenant(
            idOrName, try GatewayStore.budgetChange(limit: limit, currency: currency, period: period, soft: soft))
    }

    public func setQuota(
        _ idOrName: String, amount: String?, credit currency: String?, period: CalendarPeriod.Kind
    ) async throws -> Tenant {
        let quota = try GatewayStore.parseQuota(amount: amount, credit: currency, period: period)
        return try await modifyTenant(idOrName) { tenant in tenant.quota = quota }
    }

    /// Reads the tenant under a row lock, changes it and writes it back, in one transaction.
    private func modifyTenant(_ idOrName: String, _ change: @Sendable (inout Tenant) -> Void) async throws -> Tenant {
        try await inTransaction { connection in
            var query = PostgresQuery(
                unsafeSQL:
                    "SELECT \(Self.tenantColumns) FROM tenants WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1 FOR UPDATE"
            )
            query.binds.append(idOrName)
            guard let row = try await connection.query(query, logger: logger).collect().first else {
                throw StoreError.notFound("no tenant '\(idOrName)'")
            }
            var tenant = try Self.tenant(row)
            change(&tenant)
            let budgetLimit = tenant.budget.map { $0.limit.decimalString }
            let budgetCurrency = tenant.budget?.limit.currency
            let budgetPeriod = tenant.budget?.period.rawValue
            let budgetSoft = tenant.budget?.soft
            let credit: String? = tenant.quota.flatMap { if case .credit(let c) = $0.unit { c } else { nil } }
            let quotaAmount = tenant.quota.map { q -> String in
                if case .credit(let c) = q.unit { return Money(nanos: q.amount, currency: c).decimalString }
                return String(q.amount)
            }
            let quotaUnit = tenant.quota.map { _ in credit == nil ? "tokens" : "credit" }
            let quotaPeriod = tenant.quota?.period.rawValue
            _ = try await connection.query(
                """
                UPDATE tenants SET status = \(tenant.status.rawValue), timezone = \(tenant.timezone),
                    plan = \(tenant.plan), currency = \(tenant.currency),
                    budget_limit = \(budgetLimit), budget_currency = \(budgetCurrency),
                    budget_period = \(budgetPeriod), budget_soft = \(budgetSoft),
                    quota_amount = \(quotaAmount), quota_unit = \(quotaUnit), quota_currency = \(credit),
                    quota_period = \(quotaPeriod), stripe_customer_id = \(tenant.stripeCustomerID)
                WHERE id = \(tenant.id)
                """, logger: logger)
            return tenant
        }
    }

    // MARK: Keys

    static let keyColumns =
        "id, tenant_id, name, prefix, hash, created_at, revoked_at, requests_per_minute, tokens_per_minute, concurrent"

    static func key(_ row: PostgresRow, offset: String = "") throws -> VirtualKey {
        let r = row.makeRandomAccess()
        return VirtualKey(
            id: try r[offset + "id"].decode(String.self), tenantID: try r[offset + "tenant_id"].decode(String.self),
            name: try r[offset + "name"].decode(String?.self), prefix: try r[offset + "prefix"].decode(String.self),
            hash: Data(try r[offset + "hash"].decode(ByteBuffer.self).readableBytesView),
            createdAt: try r[offset + "created_at"].decode(Date.self),
            revokedAt: try r[offset + "revoked_at"].decode(Date?.self),
            requestsPerMinute: try r[offset + "requests_per_minute"].decode(Int?.self),
            tokensPerMinute: try r[offset + "tokens_per_minute"].decode(Int?.self),
            concurrent: try r[offset + "concurrent"].decode(Int?.self))
    }

    public func createKey(tenant idOrName: String, name: String?) async throws -> (key: VirtualKey, secret: String) {
        let tenant = try await tenant(idOrName)
        let secret = "sk-gw-" + GatewayStore.randomToken(length: 40)
        let created = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
        let key = VirtualKey(
            id: "key_" + GatewayStore.randomToken(length: 16), tenantID: tenant.id, name: name,
            prefix: String(secret.prefix(12)), hash: GatewayStore.hash(secret: secret), createdAt: created,
            revokedAt: nil, requestsPerMinute: nil, tokensPerMinute: nil, concurrent: nil)
        _ = try await client.query(
            """
            INSERT INTO virtual_keys (id, tenant_id, name, prefix, hash, created_at)
            VALUES (\(key.id), \(key.tenantID), \(key.name), \(key.prefix), \(key.hash), \(key.createdAt))
            """, logger: logger)
        return (key, secret)
    }

    public func keys(tenant idOrName: String?) async throws -> [VirtualKey] {
        var sql = "SELECT \(Self.keyColumns) FROM virtual_keys"
        var query = PostgresQuery(unsafeSQL: "")
        if let idOrName {
            let tenantID = try await tenant(idOrName).id
            sql += " WHERE tenant_id = $1"
            query.binds.append(tenantID)
        }
        query.sql = sql + " ORDER BY created_at, id"
        return try await client.query(query, logger: logger).collect().map { try Self.key($0) }
    }

    /// The one key with this id or displayed prefix, locked for update.
    private func uniqueKey(_ idOrPrefix: String, _ connection: PostgresConnection) async throws -> VirtualKey {
        var query = PostgresQuery(
            unsafeSQL: "SELECT \(Self.keyColumns) FROM virtual_keys WHERE id = $1 OR prefix = $1 FOR UPDATE")
        query.binds.append(idOrPrefix)
        let rows = try await connection.query(query, logger: logger).collect()
        guard let first = rows.first else { throw StoreError.notFound("no key '\(idOrPrefix)'") }
        guard rows.count == 1 else { throw StoreError.conflict("'\(idOrPrefix)' matches several keys; use the key id") }
        return try Self.key(first)
    }

    public func revokeKey(_ idOrPrefix: String) async throws -> VirtualKey {
        try await inTransaction { connection in
            var key = try await uniqueKey(idOrPrefix, connection)
            if key.revokedAt == nil {
                let now = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 * 1_000_000).rounded() / 1_000_000)
                key.revokedAt = now
                _ = try await connection.query(
                    "UPDATE virtual_keys SET revoked_at = \(now) WHERE id = \(key.id)", logger: logger)
            }
            return key
        }
    }

    public func setKeyLimits(_ idOrPrefix: String, limits: RateLimits) async throws -> VirtualKey {
        try GatewayStore.checkKeyLimits(limits)
        return try await inTransaction { connection in
            var key = try await uniqueKey(idOrPrefix, connection)
            key.requestsPerMinute = limits.requestsPerMinute
            key.tokensPerMinute = limits.tokensPerMinute
            key.concurrent = limits.concurrent
            _ = try await connection.query(
                """
                UPDATE virtual_keys SET requests_per_minute = \(key.requestsPerMinute),
                    tokens_per_minute = \(key.tokensPerMinute), concurrent = \(key.concurrent)
                WHERE id = \(key.id)
                """, logger: logger)
            return key
        }
    }

    public func authVersion() async throws -> Int {
        for try await version in try await client.query("SELECT version FROM auth_version", logger: logger).decode(
            Int.self)
        {
            return version
        }
        return 0
    }

    public func activeCredentials() async throws -> [(key: VirtualKey, tenant: Tenant)] {
        let tenants = Dictionary(uniqueKeysWithValues: try await tenants().map { ($0.id, $0) })
        let keys = try await client.query(
            PostgresQuery(unsafeSQL: "SELECT \(Self.keyColumns) FROM virtual_keys WHERE revoked_at IS NULL"),
            logger: logger
        ).collect().map { try Self.key($0) }
        return keys.compactMap { key in tenants[key.tenantID].map { (key, $0) } }
    }

    public func activeCredential(hash: Data) async throws -> (key: VirtualKey, tenant: Tenant)? {
        var query = PostgresQuery(
            unsafeSQL: "SELECT \(Self.keyColumns) FROM virtual_keys WHERE hash = $1 AND revoked_at IS NULL")
        try query.binds.append(hash)
        guard let row = try await client.query(query, logger: logger).collect().first else { return nil }
        let key = try Self.key(row)
        guard let tenant = try? await tenant(key.tenantID) else { return nil }
        return (key, tenant)
    }

}
