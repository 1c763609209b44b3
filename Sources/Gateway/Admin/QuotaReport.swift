import Foundation
import Logging
import Metering
import NIOPosix

/// The same report for the CLI, the admin API and `/v1/usage`.
public enum QuotaReport {
    static func unit(_ key: PolicyEngine.CounterKey, plan: Plan) -> String {
        switch key.pool {
        case .budget: return plan.budget?.limit.currency ?? ""
        case .free, .grant:
            if case .credit(let c) = plan.freeQuota?.unit { return c }
            return "tokens"
        }
    }

    static func amount(_ value: Int64, unit: String) -> String {
        unit == "tokens" ? String(value) : Money(nanos: value, currency: unit).decimalString
    }

    public static func lines(plan: Plan, standing: [(PolicyEngine.CounterKey, Int64, Int64, Int64)]) -> [String] {
        standing.map { key, used, reserved, limit in
            let u = unit(key, plan: plan)
            let period =
                key.periodStart.map {
                    "[\(BillingExportFormat.timestamp($0)), \(BillingExportFormat.timestamp(key.periodEnd!)))"
                } ?? "(one-off)"
            return
                "\(key.pool.rawValue) \(period): used \(amount(used, unit: u)), reserved \(amount(reserved, unit: u)), "
                + "limit \(amount(limit, unit: u)), remaining \(amount(max(0, limit - used - reserved), unit: u)) \(u)"
        }
    }

    public static func json(tenant: Tenant, plan: Plan, standing: [(PolicyEngine.CounterKey, Int64, Int64, Int64)])
        -> JSONValue
    {
        .object([
            ("tenant_id", .string(tenant.id)), ("plan", .string(plan.name)), ("timezone", .string(tenant.timezone)),
            (
                "pools",
                .array(
                    standing.map { key, used, reserved, limit in
                        let u = unit(key, plan: plan)
                        return .object([
                            ("pool", .string(key.pool.rawValue)), ("unit", .string(u)),
                            (
                                "period_start",
                                key.periodStart.map { .string(BillingExportFormat.timestamp($0)) } ?? .null
                            ),
                            ("period_end", key.periodEnd.map { .string(BillingExportFormat.timestamp($0)) } ?? .null),
                            ("used", .string(amount(used, unit: u))), ("reserved", .string(amount(reserved, unit: u))),
                            ("limit", .string(amount(limit, unit: u))),
                            ("remaining", .string(amount(max(0, limit - used - reserved), unit: u))),
                        ])
                    })
            ),
        ])
    }
}

extension QuotaReport {
    /// A tenant's plan and the standing of each of its pools (for the CLI, which runs apart from the
    /// gateway): on the embedded store rebuilt from the ledger, without the reservations in flight; on
    /// PostgreSQL the shared counters, with them.
    public static func standing(
        tenant: Tenant, policies: Policies, store: any BillingStore
    ) async throws -> (plan: Plan, standing: [(PolicyEngine.CounterKey, Int64, Int64, Int64)]) {
        let service = policyService(policies: policies, store: store)
        let standing = try await service.standing(tenant: tenant)
        return (service.context(for: tenant, key: nil).plan, standing)
    }

    /// A policy service for a process apart from the gateway (the CLI): on PostgreSQL it reads the shared
    /// counters, on SQLite it rebuilds them from the ledger.
    public static func policyService(policies: Policies, store: any BillingStore) -> PolicyService {
        PolicyService(
            plans: policies.plans, prices: policies.prices, store: store,
            notifier: AlertNotifier(
                webhook: nil, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "quota")),
            metrics: GatewayMetrics(), shared: (store as? PostgresStore).map { PostgresLedger(store: $0) })
    }
}
