import Foundation
import Metering
import Testing

@testable import Gateway

@Suite("Provider key pools and circuit breakers")
struct ProviderHealthTests {
    static func health() throws -> ProviderHealth {
        let config = GatewayConfig(
            providers: [
                ProviderConfig(name: "p", kind: .openai, baseURL: "http://127.0.0.1:1/v1", apiKeyEnv: "K1"),
                ProviderConfig(name: "m", kind: .mock),
            ], models: [])
        var pooled = config
        pooled.providers["p"]?.apiKeyEnvs = ["K2", "K3"]
        return ProviderHealth(config: pooled, environment: ["K1": "one", "K2": "two", "K3": "three"])
    }

    @Test("keys: fewest in flight first, round robin on ties; a 429 rests a key until its reset, 401 takes it out")
    func keys() throws {
        let h = try Self.health()
        let now = Date()
        let a = try #require(h.acquire("p", now: now))
        let b = try #require(h.acquire("p", now: now))
        let c = try #require(h.acquire("p", now: now))
        #expect(Set([a, b, c].compactMap(\.key?.id)) == ["K1", "K2", "K3"])
        h.finish(a, status: 429, headers: [("x-ratelimit-reset-requests", "1m30s")], failed: false, now: now)
        h.finish(b, status: 401, headers: [], failed: false, now: now)
        h.finish(c, status: 200, headers: [], failed: false, now: now)
        // Only the third key is usable now; the first again after its reset; the second never.
        for _ in 0..<3 {
            let lease = try #require(h.acquire("p", now: now.addingTimeInterval(60)))
            #expect(lease.key?.id == c.key?.id)
            h.finish(lease, status: 200, headers: [], failed: false, now: now)
        }
        let later = Set((0..<4).compactMap { _ in h.acquire("p", now: now.addingTimeInterval(91))?.key?.id })
        #expect(later == Set([a.key?.id, c.key?.id].compactMap { $0 }))
        // The mock needs no key: a lease without one.
        #expect(h.acquire("m", now: now)?.key == nil && h.acquire("m", now: now) != nil)
    }

    @Test("circuit: open after five failures in a row, half-open after the cool-down, closed by a success")
    func circuit() throws {
        let h = try Self.health()
        var now = Date()
        for _ in 0..<ProviderHealth.breakerThreshold {
            let lease = try #require(h.acquire("m", now: now))
            h.finish(lease, status: nil, headers: [], failed: true, now: now)
        }
        #expect(h.acquire("m", now: now) == nil)
        #expect(h.snapshot(now: now).first { $0.provider == "m" }?.circuit == .open)
        now = now.addingTimeInterval(ProviderHealth.cooldown + 0.1)
        // One probe at a time while half-open.
        let probe = try #require(h.acquire("m", now: now))
        #expect(h.acquire("m", now: now) == nil)
        h.finish(probe, status: 200, headers: [], failed: false, now: now)
        #expect(h.acquire("m", now: now) != nil)
        #expect(h.snapshot(now: now).first { $0.provider == "m" }?.circuit == .closed)
    }

    @Test("reset headers: Retry-After seconds or the soonest OpenAI-style reset, capped at an hour")
    func resets() {
        #expect(ProviderHealth.resetSeconds([("Retry-After", "7")]) == 7)
        #expect(
            ProviderHealth.resetSeconds([("x-ratelimit-reset-tokens", "6m0s"), ("x-ratelimit-reset-requests", "20ms")])
                == 0.02)
        #expect(ProviderHealth.resetSeconds([("retry-after", "86400")]) == 3_600)
        #expect(ProviderHealth.resetSeconds([("retry-after", "soon")]) == nil)
        #expect(ProviderHealth.duration("1h2m3.5s") == 3_723.5)
        #expect(ProviderHealth.duration("12") == nil && ProviderHealth.duration("3x") == nil)
    }
}
