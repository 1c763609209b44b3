import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The admin API's JSON resources: tenants, keys, budgets, quotas and usage (described in
/// `docs/openapi.yaml`), plus `GET /v1/usage` for a tenant's own key.
struct AdminAPI: Sendable {
    let store: GatewayStore
    let auth: AdminAuthenticator
    let policy: PolicyService
    let keys: Authenticator

    typealias Handler = @Sendable (Request, GatewayRequestContext) async throws -> (Int, JSONValue)

    func register(on router: Router<GatewayRequestContext>) {
        route(router, .get, "/admin/v1/tenants") { _, _ in
            (200, .object([("data", .array(try run { try store.tenants() }.map(Self.tenantJSON)))]))
        }
        route(router, .post, "/admin/v1/tenants") { request, _ in
            let body = try await Self.body(request)
            guard let name = body["name"]?.stringValue else { throw Self.invalid("name is required", param: "name") }
            var tenant = try run {
                try store.createTenant(name: name, timezone: body["timezone"]?.stringValue ?? "UTC")
            }
            if body["plan"] != nil || body["currency"] != nil {
                tenant = try run {
                    try store.updateTenant(
                        tenant.id, .init(plan: try checkedPlan(body["plan"]), currency: body["currency"]?.stringValue))
                }
            }
            return (201, Self.tenantJSON(tenant))
        }
        route(router, .get, "/admin/v1/tenants/:tenant") { _, context in
            (200, Self.tenantJSON(try run { try store.tenant(try Self.parameter(context, "tenant")) }))
        }
        route(router, .patch, "/admin/v1/tenants/:tenant") { request, context in
            let body = try await Self.body(request)
            let update = GatewayStore.TenantUpdate(
                plan: try checkedPlan(body["plan"]), timezone: body["timezone"]?.stringValue,
                currency: body["currency"]?.stringValue, status: body["status"]?.stringValue)
            return (
                200, Self.tenantJSON(try run { try store.updateTenant(try Self.parameter(context, "tenant"), update) })
            )
        }
        route(router, .get, "/admin/v1/tenants/:tenant/keys") { _, context in
            let list = try run { try store.keys(tenant: try Self.parameter(context, "tenant")) }
            return (200, .object([("data", .array(list.map(Self.keyJSON)))]))
        }
        route(router, .post, "/admin/v1/tenants/:tenant/keys") { request, context in
            let body = try await Self.body(request, optional: true)
            let (key, secret) = try run {
                try store.createKey(tenant: try Self.parameter(context, "tenant"), name: body["name"]?.stringValue)
            }
            guard case .object(var members) = Self.keyJSON(key) else { return (500, .null) }
            members.append(("secret", .string(secret)))
            return (201, .object(members))
        }
        route(router, .post, "/admin/v1/keys/:key/revoke") { _, context in
            (200, Self.keyJSON(try run { try store.revokeKey(try Self.parameter(context, "key")) }))
        }
        route(router, .put, "/admin/v1/keys/:key/limits") { request, context in
            let body = try await Self.body(request)
            let limits = RateLimits(
                requestsPerMinute: body["requests_per_minute"]?.intValue,
                tokensPerMinute: body["tokens_per_minute"]?.intValue, concurrent: body["concurrent"]?.intValue)
            return (
                200,
                Self.keyJSON(try run { try store.setKeyLimits(try Self.parameter(context, "key"), limits: limits) })
            )
        }
        route(router, .put, "/admin/v1/tenants/:tenant/budget") { request, context in
            let body = try await Self.body(request)
            guard let limit = body["limit"]?.stringValue else {
                throw Self.invalid("limit is required, as a decimal string such as \"25.00\"", param: "limit")
            }
            let periodText = body["period"]?.stringValue ?? "month"
            guard let period = CalendarPeriod.Kind(rawValue: periodText) else {
                throw Self.invalid("period must be day, week or month", param: "period")
            }
            let mode = body["mode"]?.stringValue ?? "hard"
            guard mode == "hard" || mode == "soft" else {
                throw Self.invalid("mode must be hard or soft", param: "mode")
            }
            let tenant = try run {
                try store.setBudget(
                    try Self.parameter(context, "tenant"), limit: limit, currency: body["currency"]?.stringValue,
                    period: period, soft: mode == "soft")
            }
            return (200, Self.tenantJSON(tenant))
        }
        route(router, .delete, "/admin/v1/tenants/:tenant/budget") { _, context in
            (200, Self.tenantJSON(try run { try store.setBudget(try Self.parameter(context, "tenant"), limit: nil) }))
        }
        route(router, .get, "/admin/v1/tenants/:tenant/quota") { _, context in
            let tenant = try run { try store.tenant(try Self.parameter(context, "tenant")) }
            return (200, try await quota(tenant))
        }
        route(router, .put, "/admin/v1/tenants/:tenant/quota") { request, context in
            let body = try await Self.body(request)
            let amount: String
            if let text = body["amount"]?.stringValue {
                amount = text
            } else if let n = body["amount"]?.intValue {
                amount = String(n)
            } else {
                throw Self.invalid(
                    "amount is required: whole tokens, or a decimal string with currency", param: "amount")
            }
            guard let period = CalendarPeriod.Kind(rawValue: body["period"]?.stringValue ?? "month") else {
                throw Self.invalid("period must be day or month", param: "period")
            }
            let tenant = try run {
                try store.setQuota(
                    try Self.parameter(context, "tenant"), amount: amount, credit: body["currency"]?.stringValue,
                    period: period)
            }
            return (200, try await quota(tenant))
        }
        route(router, .delete, "/admin/v1/tenants/:tenant/quota") { _, context in
            let tenant = try run { try store.setQuota(try Self.parameter(context, "tenant"), amount: nil) }
            return (200, try await quota(tenant))
        }
        route(router, .get, "/admin/v1/tenants/:tenant/usage") { request, context in
            let tenant = try run { try store.tenant(try Self.parameter(context, "tenant")) }
            return (200, try usage(tenant, period: request.uri.queryParameters["period"].map(String.init)))
        }
        // A tenant's own key reads its own usage and quota, and nothing of any other tenant.
        router.get("/v1/usage") { request, context -> Response in
            do {
                let key = try await keys.authenticate(request.headers)
                let period = request.uri.queryParameters["period"].map(String.init)
                let tenant = key.tenant
                let report: JSONValue = try await offEventLoop {
                    let usage = try usage(tenant, period: period)
                    return usage
                }
                let quota: JSONValue = try await quota(tenant)
                guard case .object(var members) = report else { return Response(status: .internalServerError) }
                members.append(("quota", quota))
                return Self.json(200, .object(members), context: context)
            } catch let error as GatewayError {
                return error.response(dialect: .openai, requestID: context.requestID)
            } catch {
                return GatewayError(status: 500, message: "The usage request failed.").response(
                    dialect: .openai, requestID: context.requestID)
            }
        }
    }

    private func route(
        _ router: Router<GatewayRequestContext>, _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping Handler
    ) {
        let auth = auth
        router.on(RouterPath(path), method: method) { request, context -> Response in
            do {
                try auth.authorize(request.headers)
                // Handlers read and write the store, which blocks: never on an event loop.
                let (status, body) = try await offEventLoop { try await handler(request, context) }
                return Self.json(status, body, context: context)
            } catch let error as GatewayError {
                return error.response(dialect: .openai, requestID: context.requestID)
            } catch {
                return GatewayError(status: 500, message: "The admin request failed.").response(
                    dialect: .openai, requestID: context.requestID)
            }
        }
    }

    // MARK: Resources

    private func quota(_ tenant: Tenant) async throws(GatewayError) -> JSONValue {
        let standing: [(PolicyEngine.CounterKey, Int64, Int64, Int64)]
        do {
            standing = try await policy.standing(tenant: tenant)
        } catch {
            throw GatewayError(status: 500, message: "The store failed: \(error)")
        }
        return QuotaReport.json(tenant: tenant, plan: policy.context(for: tenant, key: nil).plan, standing: standing)
    }

    private func usage(_ tenant: Tenant, period text: String?) throws(GatewayError) -> JSONValue {
        let zone = TimeZone(identifier: tenant.timezone) ?? .gmt
        let period: CalendarPeriod
        if let text {
            guard let p = CalendarPeriod.parse(text, timeZone: zone) else {
                throw Self.invalid("period must be YYYY-MM or YYYY-MM-DD", param: "period")
            }
            period = p
        } else {
            period = CalendarPeriod.containing(Date(), kind: .month, timeZone: zone)
        }
        let query = GatewayStore.BillingQuery(from: period.start, to: period.end, tenantID: tenant.id)
        let totals = try run { try store.usageTotals(query) }
        let models = try run { try store.usageByModel(query) }
        return .object([
            ("tenant_id", .string(tenant.id)), ("timezone", .string(tenant.timezone)),
            ("from", .string(BillingExportFormat.timestamp(period.start))),
            ("to", .string(BillingExportFormat.timestamp(period.end))),
            ("totals", .array(totals.map { Self.totalJSON($0, model: nil) })),
            ("models", .array(models.map { Self.totalJSON($0.total, model: $0.model) })),
        ])
    }

    private func checkedPlan(_ value: JSONValue?) throws(GatewayError) -> String? {
        guard let name = value?.stringValue else { return nil }
        guard policy.plans.plans[name] != nil else { throw Self.invalid("no plan '\(name)'", param: "plan") }
        return name
    }

    static func tenantJSON(_ t: Tenant) -> JSONValue {
        let budget: JSONValue =
            t.budgetLimit.map {
                .object([
                    ("limit", .string($0)), ("currency", .string(t.budgetCurrency ?? "")),
                    ("period", .string(t.budgetPeriod ?? "month")),
                    ("mode", .string((t.budgetSoft ?? false) ? "soft" : "hard")),
                ])
            } ?? .null
        return .object([
            ("id", .string(t.id)), ("name", .string(t.name)), ("status", .string(t.status)),
            ("timezone", .string(t.timezone)), ("plan", t.plan.map(JSONValue.string) ?? .null),
            ("currency", t.currency.map(JSONValue.string) ?? .null),
            ("created_at", .string(BillingExportFormat.timestamp(t.createdAt))), ("budget", budget),
            (
                "quota",
                t.quotaAmount.map {
                    .object([
                        ("amount", .string($0)), ("unit", .string(t.quotaUnit ?? "tokens")),
                        ("currency", t.quotaCurrency.map(JSONValue.string) ?? .null),
                        ("period", .string(t.quotaPeriod ?? "month")),
                    ])
                } ?? .null
            ),
        ])
    }

    static func keyJSON(_ k: VirtualKey) -> JSONValue {
        .object([
            ("id", .string(k.id)), ("tenant_id", .string(k.tenantID)), ("name", k.name.map(JSONValue.string) ?? .null),
            ("prefix", .string(k.prefix)), ("created_at", .string(BillingExportFormat.timestamp(k.createdAt))),
            ("revoked_at", k.revokedAt.map { .string(BillingExportFormat.timestamp($0)) } ?? .null),
            (
                "limits",
                .object([
                    ("requests_per_minute", k.requestsPerMinute.map(JSONValue.int) ?? .null),
                    ("tokens_per_minute", k.tokensPerMinute.map(JSONValue.int) ?? .null),
                    ("concurrent", k.concurrent.map(JSONValue.int) ?? .null),
                ])
            ),
        ])
    }

    static func totalJSON(_ t: GatewayStore.UsageTotal, model: String?) -> JSONValue {
        var members: [(String, JSONValue)] = model.map { [("model", .string($0))] } ?? []
        members += [
            ("currency", .string(t.currency)), ("requests", .int(t.requests)), ("prompt_tokens", .int(t.promptTokens)),
            ("cached_tokens", .int(t.cachedTokens)), ("cache_write_tokens", .int(t.cacheWriteTokens)),
            ("completion_tokens", .int(t.completionTokens)), ("reasoning_tokens", .int(t.reasoningTokens)),
            ("cost", .string(Money(nanos: t.costNanos, currency: t.currency).decimalString)),
        ]
        return .object(members)
    }

    // MARK: Helpers

    private func run<T>(_ body: () throws -> T) throws(GatewayError) -> T {
        do {
            return try body()
        } catch let error as GatewayError {
            throw error
        } catch let error as StoreError {
            switch error {
            case .notFound(let m): throw GatewayError(status: 404, message: m, code: "not_found")
            case .conflict(let m): throw GatewayError(status: 409, message: m, code: "conflict")
            case .invalid(let m): throw Self.invalid(m)
            }
        } catch {
            throw GatewayError(status: 500, message: "The store failed: \(error)")
        }
    }

    static func parameter(_ context: GatewayRequestContext, _ name: String) throws(GatewayError) -> String {
        guard let value = context.parameters.get(name) else { throw invalid("missing \(name)") }
        return value
    }

    static func invalid(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(status: 400, message: message, openAIType: "invalid_request_error", param: param)
    }

    static func body(_ request: Request, optional: Bool = false) async throws(GatewayError) -> JSONValue {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 1 << 20)
        } catch {
            throw invalid("the body could not be read")
        }
        if buffer.readableBytes == 0 && optional { return .object([]) }
        guard let json = try? JSONReader.parse(Array(buffer.readableBytesView)), json.objectValue != nil else {
            throw invalid("the body must be a JSON object")
        }
        return json
    }

    static func json(_ status: Int, _ body: JSONValue, context: GatewayRequestContext) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.requestID] = context.requestID
        return Response(
            status: .init(code: status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(string: JSONWriter.serialize(body))))
    }
}
