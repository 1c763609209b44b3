import Foundation
import Metering
import Testing

@Suite("Gateway configuration")
struct GatewayConfigTests {
    static let valid = """
        providers:
          - {name: mock, kind: mock}
          - name: openai
            kind: openai
            base_url: https://api.openai.com/v1/
            api_key_env: OPENAI_API_KEY
            timeouts: {connect_ms: 100, first_byte_ms: 200, idle_read_ms: 300}
        models:
          - {name: a, provider: mock, tokenizer: o200k_base}
          - {name: b, provider: openai, upstream_model: gpt-b, tokenizer: cl100k_base, calibration: "1.15", price_id: p}
        """

    @Test("reads providers, timeouts and models")
    func valid() throws {
        let config = try GatewayConfig.parse(yaml: Self.valid, file: "g.yaml")
        #expect(config.providers["openai"]?.baseURL == "https://api.openai.com/v1")
        #expect(
            config.providers["openai"]?.timeouts
                == ProviderTimeouts(connectMilliseconds: 100, firstByteMilliseconds: 200, idleReadMilliseconds: 300))
        #expect(config.models.map(\.name) == ["a", "b"])
        #expect(config.modelsByName["b"]?.upstreamModel == "gpt-b")
        #expect(config.modelsByName["b"]?.calibrationPerMille == 1150)
        #expect(config.modelsByName["a"]?.priceID == "a")
        #expect(config.server.port == 8080)
    }

    @Test(
        "errors name the file, the line and the reason",
        arguments: [
            ("providers:\n  - {name: x, kind: rocket}\nmodels: []\n", 2, "is not one of"),
            ("server: {ledger_sync: sometimes}\nproviders: []\nmodels: []\n", 1, "expected full or normal"),
            (
                "providers:\n  - {name: m, kind: mock}\nmodels:\n  - {name: a, provider: nope, tokenizer: o200k_base}\n",
                4, "unknown provider"
            ),
            (
                "providers:\n  - {name: m, kind: mock}\nmodels:\n  - {name: a, provider: m, tokenizer: bpe9}\n", 4,
                "unknown tokenizer"
            ),
            ("providers:\n  - {name: m, kind: mock}\nmodelz: []\n", 3, "unknown key"),
            (
                "providers:\n  - name: o\n    kind: openai\n    base_url: ftp://x\n    api_key_env: K\nmodels: []\n", 4,
                "http"
            ),
            ("providers:\n  - name: o\n    kind: openai\n    base_url: https://x\nmodels: []\n", 2, "api_key_env"),
            ("providers: [\n", 2, "invalid YAML"),
            ("server:\n  port: 99999\nproviders: []\nmodels: []\n", 2, "between"),
        ])
    func located(yaml: String, line: Int, reason: String) {
        do {
            _ = try GatewayConfig.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("expected a configuration error")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains(reason), "\(error)")
        }
    }

    @Test("the shipped policies/gateway.yaml loads and serves mock models")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let config = try GatewayConfig.load(path: root.appendingPathComponent("policies/gateway.yaml").path)
        let mockModels = config.models.filter { config.providers[$0.provider]?.kind == .mock }
        #expect(!mockModels.isEmpty)
        #expect(config.providers.values.filter { $0.kind != .mock }.allSatisfy { $0.apiKeyEnv != nil })
    }
}
