import Foundation

/// Everything the gateway loads from `policies/`: the gateway config and the price book it names.
public struct Policies: Sendable {
    public var gateway: GatewayConfig
    public var prices: PriceBook
    public var plans: PlanBook
    /// The files these policies were read from (for reloads).
    public var files: [String]

    public init(gateway: GatewayConfig, prices: PriceBook, plans: PlanBook = .unlimited, files: [String] = []) {
        self.gateway = gateway
        self.prices = prices
        self.plans = plans
        self.files = files
    }

    /// Loads the config at `configPath`, and the price book and plans it names (beside it by default).
    /// A missing plans file means no limits; a missing price book is an error.
    public static func load(configPath: String) throws(ConfigError) -> Policies {
        let gateway = try GatewayConfig.load(path: configPath)
        let directory = (configPath as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String {
            file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file)
        }
        let pricesPath = resolve(gateway.priceBookFile)
        let plansPath = resolve(gateway.plansFile)
        var files = [configPath, pricesPath]
        var plans = PlanBook.unlimited
        if FileManager.default.fileExists(atPath: plansPath) {
            plans = try PlanBook.load(path: plansPath)
            files.append(plansPath)
        }
        let policies = Policies(
            gateway: gateway, prices: try PriceBook.load(path: pricesPath), plans: plans, files: files)
        try policies.validatePlans()
        return policies
    }

    /// Plans may only name models the gateway routes.
    public func validatePlans() throws(ConfigError) {
        let plansFile = files.count > 2 ? files[2] : "plans.yaml"
        for plan in plans.plans.values {
            let named = (plan.allowedModels ?? []).union(plan.freeQuota?.models ?? [])
            if let unknown = named.sorted().first(where: { gateway.modelsByName[$0] == nil }) {
                throw ConfigError(
                    file: plansFile, line: nil, reason: "plan '\(plan.name)' names unknown model '\(unknown)'")
            }
        }
    }

    /// Models whose `price_id` has no entry in the book: their requests are recorded unpriced.
    public var unpricedModels: [String] {
        gateway.models.filter { prices.entries[$0.priceID]?.isEmpty ?? true }.map(\.name)
    }
}
