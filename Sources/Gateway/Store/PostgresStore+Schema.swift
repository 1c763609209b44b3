import Foundation
import Logging
import Metering
import PostgresNIO

/// The PostgreSQL schema and its migrations.
extension PostgresStore {
    // MARK: Schema

    /// Each entry is one migration: its statements, applied in order in one transaction and recorded in
    /// `schema_migrations` (PostgreSQL prepares each statement on its own).
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE tenants (
                id text PRIMARY KEY,
                name text NOT NULL UNIQUE,
                status text NOT NULL DEFAULT 'active',
                timezone text NOT NULL DEFAULT 'UTC',
                created_at timestamptz NOT NULL,
                plan text, currency text,
                budget_limit text, budget_currency text, budget_period text, budget_soft boolean,
                quota_amount text, quota_unit text, quota_currency text, quota_period text
            )
            """,
            """
            CREATE TABLE virtual_keys (
                id text PRIMARY KEY,
                tenant_id text NOT NULL REFERENCES tenants(id),
                name text,
                prefix text NOT NULL,
                hash bytea NOT NULL UNIQUE,
                created_at timestamptz NOT NULL,
                revoked_at timestamptz,
                requests_per_minute integer, tokens_per_minute integer, concurrent integer
            )
            """,
            """
            CREATE INDEX virtual_keys_tenant ON virtual_keys(tenant_id)
            """,
            """
            CREATE INDEX virtual_keys_prefix ON virtual_keys(prefix)
            """,
            // Bumped by every change that affects authentication; replicas poll this one row.
            """
            CREATE TABLE auth_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)
            """,
            """
            INSERT INTO auth_version VALUES (1, 0)
            """,
            """
            CREATE FUNCTION bump_auth_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE auth_version SET version = version + 1;
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON virtual_keys
            FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_version()
            """,
            """
            CREATE TRIGGER tenants_changed AFTER UPDATE ON tenants
            FOR EACH STATEMENT EXECUTE FUNCTION bump_auth_version()
            """,
            // Times are microseconds since the Unix epoch (UTC); money is integer nano-units.
            """
            CREATE TABLE billing_records (
                seq bigserial PRIMARY KEY,
                id text NOT NULL UNIQUE,
                request_id text NOT NULL,
                tenant_id text NOT NULL,
                key_id text NOT NULL,
                started_at bigint NOT NULL,
                ended_at bigint NOT NULL,
                ttft_ms bigint,
                endpoint text NOT NULL,
                model text NOT NULL,
                upstream_model text NOT NULL,
                provider text NOT NULL,
                stream boolean NOT NULL,
                status text NOT NULL,
                http_status integer NOT NULL,
                error text,
                prompt_tokens bigint NOT NULL,
                cached_tokens bigint NOT NULL,
                cache_write_tokens bigint NOT NULL,
                completion_tokens bigint NOT NULL,
                reasoning_tokens bigint NOT NULL,
                usage_source text NOT NULL,
                local_prompt_tokens bigint NOT NULL,
                local_completion_tokens bigint NOT NULL,
                local_estimate boolean NOT NULL,
                price_entry text,
                currency text,
                cost_nanos bigint,
                estimated_tokens bigint NOT NULL DEFAULT 0,
                estimated_cost_nanos bigint,
                free_units bigint NOT NULL DEFAULT 0,
                grant_units bigint NOT NULL DEFAULT 0,
                free_cost_nanos bigint,
                charged_nanos bigint,
                budget_currency text,
                budget_charge_nanos bigint
            )
            """,
            """
            CREATE INDEX billing_records_started ON billing_records(started_at)
            """,
            """
            CREATE INDEX billing_records_tenant_started ON billing_records(tenant_id, started_at)
            """,
        ],
        // 2: policy state shared by replicas (docs/scale-out.md). Period starts are microseconds since
        // the epoch (the grant, which has no period, uses the smallest bigint); the currency is '' for
        // token pools.
        [
            """
            CREATE TABLE policy_counters (
                tenant_id text NOT NULL,
                pool text NOT NULL,
                period_start bigint NOT NULL,
                currency text NOT NULL,
                used bigint NOT NULL,
                reserved bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (tenant_id, pool, period_start, currency)
            )
            """,
            """
            CREATE TABLE policy_reservations (
                id bigserial PRIMARY KEY,
                tenant_id text NOT NULL,
                key_id text NOT NULL,
                model text NOT NULL,
                replica text NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint NOT NULL,
                free_period bigint,
                free_units bigint NOT NULL DEFAULT 0,
                grant_units bigint NOT NULL DEFAULT 0,
                budget_period bigint,
                budget_currency text,
                budget_units bigint NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE INDEX policy_reservations_tenant ON policy_reservations(tenant_id)
            """,
            """
            CREATE INDEX policy_reservations_key ON policy_reservations(key_id)
            """,
            """
            CREATE INDEX policy_reservations_expiry ON policy_reservations(expires_at)
            """,
            // One fixed one-minute window per rate scope (`t|tenant`, `k|key`); window_start in seconds.
            """
            CREATE TABLE policy_rates (
                scope text PRIMARY KEY,
                window_start bigint NOT NULL DEFAULT 0,
                requests bigint NOT NULL DEFAULT 0,
                tokens bigint NOT NULL DEFAULT 0
            )
            """,
            // Budget thresholds already announced, once per tenant, period and percent.
            """
            CREATE TABLE policy_alerts (
                tenant_id text NOT NULL,
                period_start bigint NOT NULL,
                percent integer NOT NULL,
                fired_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (tenant_id, period_start, percent)
            )
            """,
        ],
        // 3: billing sinks: each record's delivery entries, written in the record's commit.
        [
            "ALTER TABLE tenants ADD COLUMN stripe_customer_id text",
            BillingOutbox.postgresSchema,
            "CREATE INDEX billing_outbox_due ON billing_outbox(sink, state, next_attempt_at)",
        ],
        // 4: retries and fallbacks: how many attempts a request made, the key that served it, and the
        // attempts that failed (a JSON array, written with the record).
        [
            "ALTER TABLE billing_records ADD COLUMN attempts integer NOT NULL DEFAULT 1",
            "ALTER TABLE billing_records ADD COLUMN upstream_key_id text",
            "ALTER TABLE billing_records ADD COLUMN failed_attempts text",
        ],
    ]

    /// An arbitrary constant: the advisory lock that serializes migrations across replicas.
    static let migrationLock: Int64 = 0x6761_7465_7761_7931

    /// The migrations this database has applied, in order.
    public func appliedMigrations() async throws -> [Int] {
        var versions: [Int] = []
        for try await version in try await client.query(
            "SELECT version FROM schema_migrations ORDER BY version", logger: logger
        ).decode(Int.self) {
            versions.append(version)
        }
        return versions
    }

    /// Applies the migrations this database has not seen (up to `version`, all by default), one
    /// transaction each, under the advisory lock.
    public func migrate(through version: Int = .max) async throws {
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
            do {
                _ = try await connection.query(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                    logger: logger)
                var applied = Set<Int>()
                for try await version in try await connection.query(
                    "SELECT version FROM schema_migrations", logger: logger
                ).decode(Int.self) {
                    applied.insert(version)
                }
                for (index, statements) in Self.migrations.enumerated()
                where !applied.contains(index + 1) && index < version {
                    let version = index + 1
                    try await connection.withTransaction(logger: logger) { transaction in
                        for sql in statements {
                            _ = try await transaction.query(PostgresQuery(unsafeSQL: sql), logger: logger)
                        }
                        _ = try await transaction.query(
                            "INSERT INTO schema_migrations (version) VALUES (\(version))", logger: logger)
                    }
                    logger.notice("applied schema migration", metadata: ["version": "\(version)"])
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                throw error
            }
            _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
        }
    }
}
