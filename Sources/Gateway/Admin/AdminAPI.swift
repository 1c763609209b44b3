import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The admin API's JSON resources: tenants, keys, budgets, quotas and usage (described in
/// `docs/openapi.yaml`), plus `GET /v1/usage` for a tenant's own key.
struct AdminAPI: Sendable {
    let store: any Store
    let policy: PolicyService
    var sinks: [BillingSinkConfig] = []

    typealias Handler = @Sendable (Request, GatewayRequestContext) async throws -> (Int, JSONValue)

    /// The methods a known path answers 405 to when it does not serve them, and an unknown `/admin/...`
    /// path 404 to (in OpenAI's format). Other methods never reach a handler: Hummingbird answers them
    /// with an empty 404.
    static let answeredMethods: [HTTPRequest.Method] = [
        .get, .head, .post, .put, .patch, .delete, .options, .trace, HTTPRequest.Method("QUERY")!,
    ]

    /// Admin routes go on `admin` (behind ``AdminAuthentication``), `GET /v1/usage` on `tenant` (behind
    /// ``TenantAuthentication``); the 405 and 404 answers go on `router`, before either.
    func register(
        on router: Router<GatewayRequestContext>, admin: RouterGroup<GatewayRequestContext>,
        tenant: RouterGroup<TenantRequestContext>
    ) {
        // Every documented path with the methods it serves, for the 405s below.
        var served: [(path: String, methods: [HTTPRequest.Method])] = [(AdminRoutes.exportPath, [.get])]
        func route(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
            if let i = served.firstIndex(where: { $0.path == path }) {
                served[i].methods.append(method)
            } else {
                served.append((path, [method]))
            }
            self.route(admin, method, String(path.dropFirst(Self.prefix.count)), handler)
        }

        route(.get, "/admin/v1/tenants") { _, _ in
            (200, .object([("data", .array(try await run { try await store.tenants() }.map(Self.tenantJSON)))]))
        }
        route(.post, "/admin/v1/tenants") { request, _ in
            let body = try await Self.body(request)
            let name = try body.requiredString("name", "name is required: the tenant's name, a non-empty string")
            guard !name.isEmpty else { throw Self.invalid("name must not be empty", param: "name") }
            // Everything is checked before the tenant is created, so a refused request creates nothing.
            let timezone = try Self.timeZone(body) ?? "UTC"
            let plan = try checkedPlan(body)
            let currency = try Self.currency(body)
            var tenant = try await run { try await store.createTenant(name: name, timezone: timezone) }
            if plan != nil || currency != nil {
                tenant = try await run {
                    try await store.updateTenant(tenant.id, .init(plan: plan, currency: currency))
                }
            }
            return (201, Self.tenantJSON(tenant))
        }
        route(.get, "/admin/v1/tenants/:tenant") { _, context in
            (200, Self.tenantJSON(try await run { try await store.tenant(try Self.parameter(context, "tenant")) }))
        }
        route(.patch, "/admin/v1/tenants/:tenant") { request, context in
            let body = try await Self.body(request)
            let update = GatewayStore.TenantUpdate(
                plan: try checkedPlan(body), timezone: try Self.timeZone(body), currency: try Self.currency(body),
                status: try body.choice("status", ["active", "suspended"]),
                stripeCustomerID: try Self.stripeCustomer(body))
            return (
                200,
                Self.tenantJSON(
                    try await run { try await store.updateTenant(try Self.parameter(context, "tenant"), update) })
            )
        }
        route(.get, "/admin/v1/tenants/:tenant/keys") { _, context in
            let list = try await run { try await store.keys(tenant: try Self.parameter(context, "tenant")) }
            return (200, .object([("data", .array(list.map(Self.keyJSON)))]))
        }
        route(.post, "/admin/v1/tenants/:tenant/keys") { request, context in
            let body = try await Self.body(request, optional: true)
            let name = try body.string("name")
            let (key, secret) = try await run {
                try await store.createKey(tenant: try Self.parameter(context, "tenant"), name: name)
            }
            guard case .object(var members) = Self.keyJSON(key) else { return (500, .null) }
            members.append(("secret", .string(secret)))
            return (201, .object(members))
        }
        route(.post, "/admin/v1/keys/:key/revoke") { _, context in
            (200, Self.keyJSON(try await run { try await store.revokeKey(try Self.parameter(context, "key")) }))
        }
        // PUT replaces all three: a limit that is null or absent is cleared, and the plan's applies.
        route(.put, "/admin/v1/keys/:key/limits") { request, context in
            let body = try await Self.body(request)
            let limits = RateLimits(
                requestsPerMinute: try body.limit("requests_per_minute", GatewayStore.requestsPerMinuteRange),
                tokensPerMinute: try body.limit("tokens_per_minute", GatewayStore.tokensPerMinuteRange),
                concurrent: try body.limit("concurrent", GatewayStore.concurrentRange))
            return (
                200,
                Self.keyJSON(
                    try await run { try await store.setKeyLimits(try Self.parameter(context, "key"), limits: limits) })
            )
        }
        route(.put, "/admin/v1/tenants/:tenant/budget") { request, context in
            let body = try await Self.body(request)
            let limitMessage = "limit is required, as a decimal string such as \"25.00\" (at most 9 decimals)"
            let limit = try body.requiredString("limit", limitMessage)
            guard Money.parseNanos(limit) != nil else { throw Self.invalid(limitMessage, param: "limit") }
            let currency = try Self.currency(body)
            let periodText = try body.choice("period", CalendarPeriod.Kind.allCases.map(\.rawValue)) ?? "month"
            let period = CalendarPeriod.Kind(rawValue: periodText) ?? .month
            let mode = try body.choice("mode", ["hard", "soft"]) ?? "hard"
            let tenant = try await run {
                try await store.setBudget(
                    try Self.parameter(context, "tenant"), limit: limit, currency: currency, period: period,
                    soft: mode == "soft")
            }
            return (200, Self.tenantJSON(tenant))
        }
        route(.delete, "/admin/v1/tenants/:tenant/budget") { _, context in
            (200, Self.tenantJSON(try await run { try await store.clearBudget(try Self.parameter(context, "tenant")) }))
        }
        route(.get, "/admin/v1/tenants/:tenant/quota") { _, context in
            let tenant = try await run { try await store.tenant(try Self.parameter(context, "tenant")) }
            return (200, try await quota(tenant))
        }
        route(.put, "/admin/v1/tenants/:tenant/quota") { request, context in
            let body = try await Self.body(request)
            let currency = try Self.currency(body)
            let amount = try Self.quotaAmount(body, credit: currency != nil)
            let periodText = try body.choice("period", ["day", "month"]) ?? "month"
            let tenant = try await run {
                try await store.setQuota(
                    try Self.parameter(context, "tenant"), amount: amount, credit: currency,
                    period: CalendarPeriod.Kind(rawValue: periodText) ?? .month)
            }
            return (200, try await quota(tenant))
        }
        route(.delete, "/admin/v1/tenants/:tenant/quota") { _, context in
            let tenant = try await run { try await store.clearQuota(try Self.parameter(context, "tenant")) }
            return (200, try await quota(tenant))
        }
        route(.get, "/admin/v1/tenants/:tenant/usage") { request, context in
            let tenant = try await run { try await store.tenant(try Self.parameter(context, "tenant")) }
            return (200, try await usage(tenant, period: request.uri.queryParameters["period"].map(String.init)))
        }
        // A tenant's own key reads its own usage and quota, and nothing of any other tenant.
        tenant.get("usage") { request, context -> Response in
            let period = request.uri.queryParameters["period"].map(String.init)
            let tenant = context.key.tenant
            let report: JSONValue = try await offEventLoop { try await usage(tenant, period: period) }
            guard case .object(var members) = report else { throw GatewayError(status: 500, message: "usage") }
            members.append(("quota", try await quota(tenant)))
            return JSONResponse.make(200, .object(members), requestID: context.requestID)
        }
        served.append(("/v1/usage", [.get]))
        served += registerReports(route, tenant: tenant)
        registerSinks(route)

        // A known path asked with a method it does not serve: 405 with `Allow`, before authorization (the
        // paths are public in docs/openapi.yaml). Anything else under /admin: 404, in OpenAI's format.
        for (path, methods) in served {
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            for method in Self.answeredMethods where !methods.contains(method) {
                router.on(RouterPath(path), method: method) { request, context in
                    Self.errorResponse(Self.methodNotAllowed(request, path: path, allow: allow), request, context)
                }
            }
        }
        // The trie does not fall back to `/admin/**` from a node on the way to a route (`/admin/v1/keys/x`
        // ends on the node of `/admin/v1/keys/:key/limits` that has no handler): those get the 404 too.
        var unknown = ["/admin", "/admin/**"]
        for (path, _) in served where path.hasPrefix("/admin/") {
            let segments = path.split(separator: "/")
            for n in 2..<segments.count {
                let prefix = "/" + segments[..<n].joined(separator: "/")
                if !unknown.contains(prefix) && !served.contains(where: { $0.path == prefix }) {
                    unknown.append(prefix)
                }
            }
        }
        for path in unknown {
            for method in Self.answeredMethods {
                router.on(RouterPath(path), method: method) { request, context in
                    Self.errorResponse(GatewayError.notFound(path: request.uri.path), request, context)
                }
            }
        }
    }

    /// Where every admin path begins; routes are registered relative to it.
    static let prefix = "/admin/v1/"

    private func route(
        _ admin: RouterGroup<GatewayRequestContext>, _ method: HTTPRequest.Method, _ path: String,
        _ handler: @escaping Handler
    ) {
        admin.on(RouterPath(path), method: method) { request, context -> Response in
            // Handlers read and write the store, which blocks: never on an event loop.
            let (status, body): (Int, JSONValue)
            do {
                (status, body) = try await offEventLoop { try await handler(request, context) }
            } catch let error as GatewayError {
                throw error
            } catch {
                throw GatewayError(status: 500, message: "The admin request failed.")
            }
            return JSONResponse.make(status, body, requestID: context.requestID)
        }
    }

    /// 405 naming the path as docs/openapi.yaml does (`/admin/v1/tenants/{tenant}`) and the methods it serves.
    static func methodNotAllowed(_ request: Request, path: String, allow: String) -> GatewayError {
        let documented = path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
        var error = GatewayError(
            status: 405,
            message:
                "\(request.method.rawValue) is not allowed on /\(documented.joined(separator: "/")); allowed: \(allow).",
            openAIType: "invalid_request_error", code: "method_not_allowed")
        error.extraHeaders.append(("allow", allow))
        return error
    }

    /// The error in OpenAI's format; without its body for HEAD, which has none.
    static func errorResponse(_ error: GatewayError, _ request: Request, _ context: GatewayRequestContext)
        -> Response
    {
        let response = error.response(dialect: .openai, requestID: context.requestID)
        return request.method == .head ? response.createHeadResponse() : response
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

    private func usage(_ tenant: Tenant, period text: String?) async throws(GatewayError) -> JSONValue {
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
        let totals = try await run { try await store.usageTotals(query) }
        let models = try await run { try await store.usageByModel(query) }
        return .object([
            ("tenant_id", .string(tenant.id)), ("timezone", .string(tenant.timezone)),
            ("from", .string(BillingExportFormat.timestamp(period.start))),
            ("to", .string(BillingExportFormat.timestamp(period.end))),
            ("totals", .array(totals.map { Self.totalJSON($0, model: nil) })),
            ("models", .array(models.map { Self.totalJSON($0.total, model: $0.model) })),
        ])
    }

    private func checkedPlan(_ body: AdminBody) throws(GatewayError) -> String? {
        guard let name = try body.string("plan") else { return nil }
        guard policy.plans.plans[name] != nil else { throw Self.invalid("no plan '\(name)'", param: "plan") }
        return name
    }

    /// `timezone`, an identifier Foundation knows (`Asia/Shanghai`, `UTC`, `GMT+8`), as the store requires.
    static func timeZone(_ body: AdminBody) throws(GatewayError) -> String? {
        guard let name = try body.string("timezone") else { return nil }
        guard TimeZone(identifier: name) != nil else {
            throw invalid(
                "unknown time zone '\(name)': use an IANA name such as Asia/Shanghai or UTC", param: "timezone")
        }
        return name
    }

    static func currency(_ body: AdminBody) throws(GatewayError) -> String? {
        guard let code = try body.string("currency") else { return nil }
        do {
            try GatewayStore.checkCurrency(code)
        } catch {
            throw invalid("currency must be an ISO 4217 code such as USD or CNY", param: "currency")
        }
        return code
    }

    /// A quota's `amount`: whole tokens (an integer, or a string of digits) or, with a currency, a decimal
    /// credit amount (a string such as "2.50", or an integer); never negative.
    static func quotaAmount(_ body: AdminBody, credit: Bool) throws(GatewayError) -> String {
        let message =
            credit
            ? "amount must be a decimal credit amount such as \"2.50\" (at most 9 decimals), or a whole number"
            : "amount is required: whole tokens, as an integer or a string of digits (or a decimal string with currency)"
        let text: String
        switch body.json["amount"] {
        case .string(let s): text = s
        case .number(let n) where Int64(n) != nil: text = n
        default: throw invalid(message, param: "amount")
        }
        let valid =
            credit
            ? Money.parseNanos(text) != nil
            : !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
                && Int64(text) != nil
        guard valid else { throw invalid(message, param: "amount") }
        return text
    }

    static func tenantJSON(_ t: Tenant) -> JSONValue {
        let budget: JSONValue =
            t.budget.map {
                .object([
                    ("limit", .string($0.limit.shortDecimalString)), ("currency", .string($0.limit.currency)),
                    ("period", .string($0.period.rawValue)), ("mode", .string($0.soft ? "soft" : "hard")),
                ])
            } ?? .null
        let quota: JSONValue =
            t.quota.map { q in
                var currency: JSONValue = .null
                if case .credit(let c) = q.unit { currency = .string(c) }
                return .object([
                    ("amount", .string(q.amountText)), ("unit", .string(currency == .null ? "tokens" : "credit")),
                    ("currency", currency), ("period", .string(q.period.rawValue)),
                ])
            } ?? .null
        return .object([
            ("id", .string(t.id)), ("name", .string(t.name)), ("status", .string(t.status.rawValue)),
            ("timezone", .string(t.timezone)), ("plan", t.plan.map(JSONValue.string) ?? .null),
            ("currency", t.currency.map(JSONValue.string) ?? .null),
            ("created_at", .string(BillingExportFormat.timestamp(t.createdAt))), ("budget", budget), ("quota", quota),
            ("stripe_customer_id", t.stripeCustomerID.map(JSONValue.string) ?? .null),
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

    func run<T>(_ body: () async throws -> T) async throws(GatewayError) -> T {
        do {
            return try await body()
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

    /// A path parameter, percent-decoded once (`my%20team` is the tenant `my team`; `%2520` is `%20`).
    /// A `%` without two hex digits after it, or bytes that are not UTF-8, are refused with a 400.
    static func parameter(_ context: GatewayRequestContext, _ name: String) throws(GatewayError) -> String {
        guard let raw = context.parameters.get(name) else { throw invalid("missing \(name)") }
        guard let value = percentDecoded(raw) else {
            throw invalid("the \(name) in the path is not valid percent-encoded UTF-8", param: name)
        }
        return value
    }

    /// Decodes every `%XX` once; nil for a malformed escape or a result that is not UTF-8.
    static func percentDecoded(_ text: String) -> String? {
        func hex(_ byte: UInt8?) -> UInt8? {
            switch byte {
            case let b? where b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"): return b - UInt8(ascii: "0")
            case let b? where b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
            case let b? where b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = hex(iterator.next()), let low = hex(iterator.next()) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func invalid(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(status: 400, message: message, openAIType: "invalid_request_error", param: param)
    }

    static func body(_ request: Request, optional: Bool = false) async throws(GatewayError) -> AdminBody {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 1 << 20)
        } catch {
            throw invalid("the body could not be read")
        }
        if buffer.readableBytes == 0 && optional { return AdminBody(json: .object([])) }
        guard let json = try? JSONReader.parse(Array(buffer.readableBytesView)), json.objectValue != nil else {
            throw invalid("the body must be a JSON object")
        }
        return AdminBody(json: json)
    }
}

/// A request body (a JSON object) read with strict types: a member that is present must have its
/// documented type, or the request is refused with a 400 whose `param` names it. JSON null is a wrong
/// type too, except where the operation gives it a meaning (`limit`).
struct AdminBody: Sendable {
    let json: JSONValue

    /// A string member; nil when absent.
    func string(_ name: String) throws(GatewayError) -> String? {
        guard let value = json[name] else { return nil }
        guard case .string(let text) = value else { throw AdminAPI.invalid("\(name) must be a string", param: name) }
        return text
    }

    func requiredString(_ name: String, _ message: String) throws(GatewayError) -> String {
        guard case .string(let text)? = json[name] else { throw AdminAPI.invalid(message, param: name) }
        return text
    }

    /// A string member that must be one of `allowed`; nil when absent.
    func choice(_ name: String, _ allowed: [String]) throws(GatewayError) -> String? {
        guard let value = json[name] else { return nil }
        guard case .string(let text) = value, allowed.contains(text) else {
            throw AdminAPI.invalid("\(name) must be one of \(allowed.joined(separator: ", "))", param: name)
        }
        return text
    }

    /// A rate limit: an integer literal in `range`, or null; nil when null or absent.
    func limit(_ name: String, _ range: ClosedRange<Int>) throws(GatewayError) -> Int? {
        switch json[name] {
        case nil, .null?: return nil
        case .number(let text)?: if let n = Int(text), range.contains(n) { return n }
        default: break
        }
        throw AdminAPI.invalid(
            "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), or null to clear it (the plan's limit applies)",
            param: name)
    }
}
