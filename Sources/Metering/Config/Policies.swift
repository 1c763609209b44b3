import Foundation

/// Everything the gateway loads from `policies/`: the gateway config and the price book it names.
public struct Policies: Sendable {
    public var gateway: GatewayConfig
    public var prices: PriceBook

    public init(gateway: GatewayConfig, prices: PriceBook) {
        self.gateway = gateway
        self.prices = prices
    }

    /// Loads the config at `configPath` and the price book beside it (or where `price_book:` says).
    public static func load(configPath: String) throws(ConfigError) -> Policies {
        let gateway = try GatewayConfig.load(path: configPath)
        let directory = (configPath as NSString).deletingLastPathComponent
        let file = gateway.priceBookFile
        let pricesPath = file.hasPrefix("/") ? file : (directory as NSString).appendingPathComponent(file)
        return Policies(gateway: gateway, prices: try PriceBook.load(path: pricesPath))
    }

    /// Models whose `price_id` has no entry in the book: their requests are recorded unpriced.
    public var unpricedModels: [String] {
        gateway.models.filter { prices.entries[$0.priceID]?.isEmpty ?? true }.map(\.name)
    }
}
