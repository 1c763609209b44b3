import Foundation

/// Listener and request-size settings.
public struct ServerConfig: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Request bodies are read whole (the gateway must parse them) up to this size; larger gets 413.
    public var maxRequestBodyBytes: Int
    /// How the ledger commits: `full` syncs every (group) commit to disk, so records survive a power
    /// loss; `normal` writes them to the WAL before the response completes but syncs only at
    /// checkpoints, so they survive a crash or SIGKILL of the gateway but not of the machine.
    public var ledgerSync: LedgerSync = .full
    /// From a request's first byte to its complete head; a slower client is disconnected.
    public var headerTimeoutMilliseconds = 10_000
    /// A connection with no request in progress, whose request body stops arriving, or whose client
    /// takes none of its response, is closed after this long.
    public var idleTimeoutMilliseconds = 30_000
    /// Connections beyond this wait in the listen backlog until others close.
    public var maxConnections = 4096
    /// An admitted request's reservation is released after this long even if the request never
    /// settled it (a defence in depth: every path settles).
    public var reservationTTLSeconds = 3600

    public enum LedgerSync: String, Sendable, Equatable {
        case full
        case normal
    }

    public init(host: String = "127.0.0.1", port: Int = 8080, maxRequestBodyBytes: Int = 8 << 20) {
        self.host = host
        self.port = port
        self.maxRequestBodyBytes = maxRequestBodyBytes
    }
}

/// The contents of `policies/gateway.yaml`: server settings, providers and the model routing table.
public struct GatewayConfig: Sendable, Equatable, YAMLDocument {
    public var server: ServerConfig
    public var providers: [String: ProviderConfig]
    /// Public models in file order (the order `/v1/models` lists them).
    public var models: [ModelRoute]
    public var modelsByName: [String: ModelRoute]
    /// The price book file (`price_book:`), relative to this file; default `prices.yaml` beside it.
    public var priceBookFile: String
    /// The plans file (`plans:`), relative to this file; default `plans.yaml` beside it.
    public var plansFile: String
    /// Where billing records are pushed (`billing_sinks:`), through the outbox.
    public var billingSinks: [BillingSinkConfig] = []

    public init(
        server: ServerConfig = .init(), providers: [ProviderConfig], models: [ModelRoute],
        priceBookFile: String = "prices.yaml", plansFile: String = "plans.yaml"
    ) {
        self.server = server
        self.priceBookFile = priceBookFile
        self.plansFile = plansFile
        self.providers = Dictionary(providers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.models = models
        self.modelsByName = Dictionary(models.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public func route(forModel name: String) -> (ModelRoute, ProviderConfig)? {
        guard let route = modelsByName[name], let provider = providers[route.provider] else { return nil }
        return (route, provider)
    }

    /// Encodings the tokenizer registry knows; checked here so a typo fails at start, not per request.
    public static let knownEncodings: Set<String> = ["o200k_base", "cl100k_base", "qwen", "deepseek_v3"]

    public static func parse(_ root: YAMLField) throws(ConfigError) -> GatewayConfig {
        _ = try root.mapping(allowed: ["server", "providers", "models", "price_book", "plans", "billing_sinks"])
        let priceBookFile = try root.optional("price_book")?.nonEmptyString() ?? "prices.yaml"
        let plansFile = try root.optional("plans")?.nonEmptyString() ?? "plans.yaml"

        var server = ServerConfig()
        if let s = root.optional("server") {
            let keys: Set<String> = [
                "host", "port", "max_request_body_bytes", "ledger_sync", "header_timeout_ms", "idle_timeout_ms",
                "max_connections", "reservation_ttl_seconds",
            ]
            for (key, field) in try s.mapping(allowed: keys) {
                switch key {
                case "host": server.host = try field.nonEmptyString()
                case "port": server.port = try field.int(range: 0...65535)
                case "header_timeout_ms": server.headerTimeoutMilliseconds = try field.int(range: 100...600_000)
                case "idle_timeout_ms": server.idleTimeoutMilliseconds = try field.int(range: 100...3_600_000)
                case "max_connections": server.maxConnections = try field.int(range: 1...1_000_000)
                case "reservation_ttl_seconds": server.reservationTTLSeconds = try field.int(range: 10...86_400 * 7)
                case "ledger_sync":
                    guard let sync = ServerConfig.LedgerSync(rawValue: try field.string()) else {
                        throw field.fail("expected full or normal")
                    }
                    server.ledgerSync = sync
                default: server.maxRequestBodyBytes = try field.int(range: 1024...(1 << 30))
                }
            }
        }

        var providers: [ProviderConfig] = []
        var providerNames: Set<String> = []
        for field in try root.required("providers").sequence() {
            let provider = try parseProvider(field)
            guard providerNames.insert(provider.name).inserted else {
                throw field.fail("provider '\(provider.name)' is defined twice")
            }
            providers.append(provider)
        }

        var models: [ModelRoute] = []
        var modelNames: Set<String> = []
        for field in try root.required("models").sequence() {
            let model = try parseModel(field)
            guard providerNames.contains(model.provider) else {
                throw (try field.required("provider")).fail("unknown provider '\(model.provider)'")
            }
            guard modelNames.insert(model.name).inserted else {
                throw field.fail("model '\(model.name)' is defined twice")
            }
            models.append(model)
        }
        let names = Set(models.map(\.name))
        for (field, model) in zip(try root.required("models").sequence(), models) {
            for fallback in model.fallbacks where !names.contains(fallback) || fallback == model.name {
                throw field.fail("model '\(model.name)': fallback '\(fallback)' is not another configured model")
            }
        }
        var config = GatewayConfig(
            server: server, providers: providers, models: models, priceBookFile: priceBookFile, plansFile: plansFile)
        if let sinks = root.optional("billing_sinks") { config.billingSinks = try BillingSinkConfig.parseList(sinks) }
        return config
    }

    private static func parseProvider(_ field: YAMLField) throws(ConfigError) -> ProviderConfig {
        let allowed: Set<String> = [
            "name", "kind", "base_url", "api_key_env", "api_key_file", "api_keys_env", "api_key_files", "timeouts",
            "mock",
            "chat_max_tokens_field", "tls_ca_file",
        ]
        _ = try field.mapping(allowed: allowed)
        var provider = ProviderConfig(
            name: try field.required("name").nonEmptyString(),
            kind: try field.required("kind").oneOf(ProviderKind.self)
        )
        if provider.kind == .mock {
            provider.baseURL = try field.optional("base_url")?.string() ?? ""
        } else {
            let urlField = try field.required("base_url")
            let url = try urlField.nonEmptyString()
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
                throw urlField.fail("expected an http:// or https:// URL")
            }
            provider.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
            provider.apiKeyEnv = try field.optional("api_key_env")?.nonEmptyString()
            provider.apiKeyFile = try field.optional("api_key_file")?.nonEmptyString()
            provider.tlsCAFile = try field.optional("tls_ca_file")?.nonEmptyString()
        }
        if let list = field.optional("api_keys_env") {
            provider.apiKeyEnvs = try list.sequence().map { f throws(ConfigError) in try f.nonEmptyString() }
        }
        if let list = field.optional("api_key_files") {
            provider.apiKeyFiles = try list.sequence().map { f throws(ConfigError) in try f.nonEmptyString() }
        }
        if provider.kind != .mock && provider.apiKeyEnv == nil && provider.apiKeyFile == nil
            && provider.apiKeyEnvs.isEmpty && provider.apiKeyFiles.isEmpty
        {
            throw field.fail(
                "provider '\(provider.name)' needs api_key_env, api_key_file, api_keys_env or api_key_files")
        }
        if let f = field.optional("chat_max_tokens_field") {
            let member = try f.string()
            guard ["max_tokens", "max_completion_tokens"].contains(member) else {
                throw f.fail("expected max_tokens or max_completion_tokens")
            }
            provider.chatOutputLimitMember = member
        }
        if let t = field.optional("timeouts") {
            for (key, value) in try t.mapping(allowed: ["connect_ms", "first_byte_ms", "idle_read_ms"]) {
                let ms = try value.int(range: 1...3_600_000)
                switch key {
                case "connect_ms": provider.timeouts.connectMilliseconds = ms
                case "first_byte_ms": provider.timeouts.firstByteMilliseconds = ms
                default: provider.timeouts.idleReadMilliseconds = ms
                }
            }
        }
        if let m = field.optional("mock") {
            guard provider.kind == .mock else { throw m.fail("only a provider of kind mock takes mock settings") }
            for (key, value) in try m.mapping(allowed: ["reply_words", "stream_chunks", "chunk_delay_ms"]) {
                switch key {
                case "reply_words": provider.mock.replyWords = try value.int(range: 1...100_000)
                case "stream_chunks": provider.mock.streamChunks = try value.int(range: 1...100_000)
                default: provider.mock.chunkDelayMilliseconds = try value.int(range: 0...60_000)
                }
            }
        }
        return provider
    }

    private static func parseModel(_ field: YAMLField) throws(ConfigError) -> ModelRoute {
        _ = try field.mapping(allowed: [
            "name", "provider", "upstream_model", "tokenizer", "calibration", "price_id", "max_output_tokens",
            "fallbacks", "max_attempts",
        ])
        let name = try field.required("name").nonEmptyString()
        let tokenizerField = try field.required("tokenizer")
        let tokenizer = try tokenizerField.nonEmptyString()
        guard knownEncodings.contains(tokenizer) else {
            throw tokenizerField.fail(
                "unknown tokenizer encoding '\(tokenizer)' (expected one of: \(knownEncodings.sorted().joined(separator: ", ")))"
            )
        }
        var calibration = 1000
        if let c = field.optional("calibration") {
            // A decimal factor such as "1.15", stored exactly in thousandths.
            let text = try c.string()
            guard let perMille = Decimal3.parse(text), perMille > 0, perMille <= 10_000 else {
                throw c.fail("expected a factor such as 1.15 (up to three decimals, at most 10)")
            }
            calibration = perMille
        }
        var route = ModelRoute(
            name: name,
            provider: try field.required("provider").nonEmptyString(),
            upstreamModel: try field.optional("upstream_model")?.nonEmptyString() ?? name,
            tokenizer: tokenizer,
            calibrationPerMille: calibration,
            priceID: try field.optional("price_id")?.nonEmptyString() ?? name,
            maxOutputTokens: try field.optional("max_output_tokens")?.int(range: 1...10_000_000)
                ?? ModelRoute.defaultMaxOutputTokens
        )
        if let list = field.optional("fallbacks") {
            route.fallbacks = try list.sequence().map { f throws(ConfigError) in try f.nonEmptyString() }
        }
        if let n = field.optional("max_attempts") { route.maxAttempts = try n.int(range: 1...10) }
        return route
    }
}

/// Parses small decimal factors exactly into thousandths ("1.15" → 1150), never through floating point.
enum Decimal3 {
    static func parse(_ text: String) -> Int? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts[0].count <= 6, let whole = Int(parts[0]), whole >= 0 else { return nil }
        var frac = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= 3, f.allSatisfy(\.isASCII), let v = Int(f) else { return nil }
            frac = v * [1, 100, 10, 1][f.count]
        }
        return whole * 1000 + frac
    }
}
