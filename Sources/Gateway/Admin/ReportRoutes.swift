import Foundation
import HTTPTypes
import Hummingbird
import Metering

/// The reports as JSON: all tenants under the admin API, a tenant's own under `/v1/usage/...` with its key
/// (`docs/openapi.yaml`).
extension AdminAPI {
    /// Registers the admin routes through `route` and the tenant's own on `tenant`; returns the tenant
    /// paths, for the 405 answers.
    func registerReports(
        _ route: (HTTPRequest.Method, String, @escaping Handler) -> Void, tenant: RouterGroup<TenantRequestContext>
    ) -> [(path: String, methods: [HTTPRequest.Method])] {
        var served: [(path: String, methods: [HTTPRequest.Method])] = []
        route(.get, "/admin/v1/reports/inflation") { request, _ in
            (200, try await inflation(request, tenantID: try await tenantID(request)))
        }
        route(.get, "/admin/v1/reports/whatif") { request, _ in
            (200, try await whatIf(request, tenantID: try await tenantID(request), prices: nil))
        }
        // The other price book comes in the body: {"prices": "<prices.yaml text>"}.
        route(.post, "/admin/v1/reports/whatif") { request, _ in
            let body = try await Self.body(request)
            let text = try body.requiredString("prices", "prices is required: a price book in prices.yaml format")
            let book: PriceBook
            do {
                book = try PriceBook.parse(yaml: text, file: "prices")
            } catch {
                throw Self.invalid("prices: \(error)", param: "prices")
            }
            return (200, try await whatIf(request, tenantID: try await tenantID(request), prices: book))
        }
        route(.get, "/admin/v1/tenants/:tenant/forecast") { _, context in
            let tenant = try await run { try await store.tenant(try Self.parameter(context, "tenant")) }
            return (200, try await forecast(tenant))
        }

        func own(_ path: String, _ body: @escaping @Sendable (Request, Tenant) async throws -> JSONValue) {
            tenant.get(RouterPath(path)) { request, context -> Response in
                let owner = context.key.tenant
                let json = try await offEventLoop { try await body(request, owner) }
                return JSONResponse.make(200, json, requestID: context.requestID)
            }
            served.append(("/v1/" + path, [.get]))
        }
        own("usage/inflation") { request, owner in try await inflation(request, tenantID: owner.id) }
        own("usage/whatif") { request, owner in try await whatIf(request, tenantID: owner.id, prices: nil) }
        own("usage/forecast") { _, owner in try await forecast(owner) }
        return served
    }

    static func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters[Substring(name)].map(String.init)
    }

    static func instant(_ request: Request, _ name: String, required: Bool) throws(GatewayError) -> Date? {
        guard let text = query(request, name) else {
            if required { throw invalid("\(name) is required: an RFC 3339 instant or a YYYY-MM-DD date", param: name) }
            return nil
        }
        guard let date = CalendarPeriod.instant(text) else {
            throw invalid("\(name) must be an RFC 3339 instant or a YYYY-MM-DD date (UTC midnight)", param: name)
        }
        return date
    }

    static func range(_ request: Request) throws(GatewayError) -> (Date, Date) {
        let from = try instant(request, "from", required: true)!
        let to = try instant(request, "to", required: true)!
        guard from < to else { throw invalid("from must be before to", param: "from") }
        return (from, to)
    }

    /// `?tenant=` (id or name), if given.
    private func tenantID(_ request: Request) async throws(GatewayError) -> String? {
        guard let name = Self.query(request, "tenant") else { return nil }
        return try await run { try await store.tenant(name).id }
    }

    private func inflation(_ request: Request, tenantID: String?) async throws(GatewayError) -> JSONValue {
        let (from, to) = try Self.range(request)
        let byText = Self.query(request, "by") ?? "day"
        guard let kind = CalendarPeriod.Kind(rawValue: byText) else {
            throw Self.invalid("by must be day, week or month", param: "by")
        }
        let prices = policy.prices
        let report = try await run {
            try await Reports(store: store).inflation(from: from, to: to, tenantID: tenantID, by: kind, prices: prices)
        }
        return Self.reportJSON(
            "inflation", report.table,
            [
                ("from", .string(BillingExportFormat.timestamp(from))),
                ("to", .string(BillingExportFormat.timestamp(to))), ("by", .string(byText)),
            ])
    }

    private func whatIf(_ request: Request, tenantID: String?, prices other: PriceBook?) async throws(GatewayError)
        -> JSONValue
    {
        let (from, to) = try Self.range(request)
        let at = try Self.instant(request, "at", required: other == nil)
        let prices = other ?? policy.prices
        let report = try await run {
            try await Reports(store: store).whatIf(from: from, to: to, tenantID: tenantID, prices: prices, at: at)
        }
        return Self.reportJSON(
            "whatif", report.table,
            [
                ("from", .string(BillingExportFormat.timestamp(from))),
                ("to", .string(BillingExportFormat.timestamp(to))),
                ("at", at.map { .string(BillingExportFormat.timestamp($0)) } ?? .null),
                ("prices", .string(other == nil ? "own" : "given")),
            ])
    }

    private func forecast(_ tenant: Tenant) async throws(GatewayError) -> JSONValue {
        let table = try await run { try await Reports(store: store).forecast(tenant: tenant, policy: policy) }
        return Self.reportJSON("forecast", table, [("tenant_id", .string(tenant.id))])
    }

    static func reportJSON(_ name: String, _ table: ReportTable, _ meta: [(String, JSONValue)]) -> JSONValue {
        guard case .object(let members) = table.json else { return .null }
        return .object([("report", .string(name))] + meta + members)
    }
}
