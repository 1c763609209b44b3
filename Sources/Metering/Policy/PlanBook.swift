import Foundation

/// The contents of `policies/plans.yaml`: named plans, the default plan, and where alerts go.
public struct PlanBook: Sendable, Equatable, YAMLDocument {
    public var plans: [String: Plan]
    public var defaultPlan: String
    /// Budget alerts are POSTed here as JSON, if set.
    public var alertWebhook: String?

    public init(plans: [String: Plan], defaultPlan: String, alertWebhook: String? = nil) {
        self.plans = plans
        self.defaultPlan = defaultPlan
        self.alertWebhook = alertWebhook
    }

    /// No limits at all: what the gateway enforces when no plans file exists.
    public static let unlimited = PlanBook(plans: ["unlimited": Plan(name: "unlimited")], defaultPlan: "unlimited")

    public func plan(named name: String?) -> Plan {
        name.flatMap { plans[$0] } ?? plans[defaultPlan] ?? Plan(name: defaultPlan)
    }

    public static func parse(_ root: YAMLField) throws(ConfigError) -> PlanBook {
        _ = try root.mapping(allowed: ["default_plan", "plans", "alerts"])
        var plans: [String: Plan] = [:]
        for (name, field) in try root.required("plans").mapping() {
            plans[name] = try parsePlan(name: name, field)
        }
        let defaultField = try root.required("default_plan")
        let defaultPlan = try defaultField.nonEmptyString()
        guard plans[defaultPlan] != nil else { throw defaultField.fail("no plan named '\(defaultPlan)'") }
        var webhook: String?
        if let alerts = root.optional("alerts") {
            _ = try alerts.mapping(allowed: ["webhook_url"])
            if let w = alerts.optional("webhook_url") {
                let url = try w.nonEmptyString()
                guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    throw w.fail("expected an http(s) URL")
                }
                webhook = url
            }
        }
        return PlanBook(plans: plans, defaultPlan: defaultPlan, alertWebhook: webhook)
    }

    static func parsePlan(name: String, _ field: YAMLField) throws(ConfigError) -> Plan {
        _ = try field.mapping(allowed: [
            "models", "max_output_tokens", "free_quota", "budget", "rate_limits", "fallbacks",
        ])
        var plan = Plan(name: name)
        if let f = field.optional("fallbacks") { plan.fallbacks = try f.bool() }
        if let m = field.optional("models") {
            plan.allowedModels = Set(try m.sequence().map { (f) throws(ConfigError) in try f.nonEmptyString() })
        }
        if let m = field.optional("max_output_tokens") { plan.maxOutputTokens = try m.int(range: 1...10_000_000) }
        if let q = field.optional("free_quota") { plan.freeQuota = try parseQuota(q) }
        if let b = field.optional("budget") { plan.budget = try parseBudget(b) }
        if let r = field.optional("rate_limits") {
            _ = try r.mapping(allowed: ["tenant", "key"])
            if let t = r.optional("tenant") { plan.tenantLimits = try parseLimits(t) }
            if let k = r.optional("key") { plan.keyLimits = try parseLimits(k) }
        }
        return plan
    }

    static func parsePeriod(_ field: YAMLField, allowed: [CalendarPeriod.Kind]) throws(ConfigError)
        -> CalendarPeriod.Kind
    {
        let text = try field.string()
        guard let kind = CalendarPeriod.Kind(rawValue: text), allowed.contains(kind) else {
            throw field.fail("expected one of \(allowed.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }

    static func parseQuota(_ q: YAMLField) throws(ConfigError) -> FreeQuota {
        _ = try q.mapping(allowed: ["period", "unit", "currency", "models", "schedule", "grant"])
        let period = try parsePeriod(q.required("period"), allowed: [.day, .month])
        let unitField = q.optional("unit")
        let unitText = try unitField?.string() ?? "tokens"
        let unit: FreeQuota.Unit
        switch unitText {
        case "tokens": unit = .tokens
        case "credit":
            let c = try q.required("currency")
            unit = .credit(currency: try PlanBook.currency(c))
        default: throw unitField!.fail("expected tokens or credit")
        }
        func amount(_ f: YAMLField) throws(ConfigError) -> Int64 {
            if case .credit = unit {
                guard let nanos = Money.parseNanos(try f.string()) else { throw f.fail("expected a decimal string") }
                return nanos
            }
            return Int64(try f.int(range: 0...Int(Int64.max / 2)))
        }
        var steps: [FreeQuota.Step] = []
        for s in try q.required("schedule").sequence() {
            _ = try s.mapping(allowed: ["from", "amount"])
            let fromField = try s.required("from")
            let parts = try fromField.string().split(separator: "-").compactMap { Int($0) }
            guard parts.count == 3, (1...12).contains(parts[1]), (1...31).contains(parts[2]) else {
                throw fromField.fail("expected a YYYY-MM-DD date (midnight in the tenant's time zone)")
            }
            let step = FreeQuota.Step(
                year: parts[0], month: parts[1], day: parts[2], amount: try amount(s.required("amount")))
            if let last = steps.last, (last.year, last.month, last.day) >= (step.year, step.month, step.day) {
                throw fromField.fail("schedule dates must increase")
            }
            steps.append(step)
        }
        var quota = FreeQuota(unit: unit, period: period, schedule: steps)
        if let m = q.optional("models") {
            quota.models = Set(try m.sequence().map { (f) throws(ConfigError) in try f.nonEmptyString() })
        }
        if let g = q.optional("grant") {
            _ = try g.mapping(allowed: ["amount", "expires_after_days"])
            quota.grantAmount = try amount(g.required("amount"))
            quota.grantDays = try g.required("expires_after_days").int(range: 1...36_500)
        }
        return quota
    }

    static func parseBudget(_ b: YAMLField) throws(ConfigError) -> Budget {
        _ = try b.mapping(allowed: ["limit", "currency", "period", "mode", "alerts"])
        let limitField = try b.required("limit")
        guard let nanos = Money.parseNanos(try limitField.string()) else {
            throw limitField.fail("expected a decimal string such as \"25.00\"")
        }
        var hard = true
        if let m = b.optional("mode") {
            switch try m.string() {
            case "hard": hard = true
            case "soft": hard = false
            default: throw m.fail("expected hard or soft")
            }
        }
        var alerts = [50, 80, 100]
        if let a = b.optional("alerts") {
            alerts = try a.sequence().map { (f) throws(ConfigError) in try f.int(range: 1...1000) }
        }
        return Budget(
            limit: Money(nanos: nanos, currency: try currency(b.required("currency"))),
            period: try parsePeriod(b.required("period"), allowed: [.day, .week, .month]), hard: hard,
            alertPercents: alerts)
    }

    static func parseLimits(_ f: YAMLField) throws(ConfigError) -> RateLimits {
        _ = try f.mapping(allowed: ["requests_per_minute", "tokens_per_minute", "concurrent"])
        return RateLimits(
            requestsPerMinute: try f.optional("requests_per_minute")?.int(range: 1...10_000_000),
            tokensPerMinute: try f.optional("tokens_per_minute")?.int(range: 1...Int(Int32.max)),
            concurrent: try f.optional("concurrent")?.int(range: 1...1_000_000))
    }

    static func currency(_ f: YAMLField) throws(ConfigError) -> String {
        let c = try f.string()
        guard c.count == 3, c.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
            throw f.fail("expected an ISO 4217 code such as USD or CNY")
        }
        return c
    }
}
