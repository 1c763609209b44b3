import Foundation
import Gateway
import GatewayMock
import Metering
import Testing

/// How a proxied request finds its route and its key: the fast path and the router, the Bearer scheme.
@Suite("Proxy routing and key schemes over live sockets")
struct ProxyRoutingLiveTests {
    @Test("a proxied endpoint answers alike through ProxyFastPath and through the router (a trailing slash)")
    func fastPathMatchesRouter() async throws {
        try await LiveHarness.run { h in
            let chat = ProxyLiveTests.body(.chatCompletions, model: "emu-gpt", stream: false)
            for path in ["/v1/chat/completions", "/v1/chat/completions/"] {
                let refused = try await h.post(h.gatewayURL + path, body: chat, auth: false)
                #expect(refused.status == 401, "\(path)")
                #expect(refused.json?["error"]?["code"]?.stringValue == "invalid_api_key", "\(path)")
                let ok = try await h.post(h.gatewayURL + path, body: chat)
                #expect(ok.status == 200, "\(path)")
                #expect(ok.json?["choices"]?[0]?["message"] != nil, "\(path)")
            }
            #expect(h.emulator.requests.count == 2)
        }
    }

    @Test("the Bearer scheme is matched without regard to case; any other scheme or spelling is refused")
    func bearerScheme() async throws {
        try await LiveHarness.run { h in
            let chat = ProxyLiveTests.body(.chatCompletions, model: "emu-gpt", stream: false)
            let accepted = [
                "Bearer \(h.clientKey)", "bearer \(h.clientKey)", "BEARER \(h.clientKey)",
                "bEaReR   \(h.clientKey)  ",
            ]
            for value in accepted {
                let reply = try await h.post(
                    h.gatewayURL + "/v1/chat/completions", body: chat, headers: [("authorization", value)], auth: false)
                #expect(reply.status == 200, "\(value)")
            }
            let refused = [
                "Bearer", "Bearer ", "Basic \(h.clientKey)", "Bearer\t\(h.clientKey)",
                "Bearerx\(h.clientKey)", "Bearer \(h.clientKey)x", "B\u{e9}arer \(h.clientKey)",
            ]
            for value in refused {
                let reply = try await h.post(
                    h.gatewayURL + "/v1/chat/completions", body: chat, headers: [("authorization", value)], auth: false)
                #expect(reply.status == 401, "\(value)")
            }
            #expect(h.emulator.requests.count == accepted.count)
        }
    }
}
