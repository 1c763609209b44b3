import Foundation
import GatewayMock
import Metering
import NIOHTTP1
import Testing

/// The gateway's own upstream client against an emulator behind TLS, with a certificate from a CA made
/// for the run: verified when the provider trusts that CA, refused when it does not.
@Suite("Upstream client over TLS")
struct UpstreamClientLiveTests {
    @Test("TLS upstream with a trusted CA: streamed and whole answers arrive byte-identical and are billed")
    func trustedTLS() async throws {
        try await LiveHarness.run(tlsUpstream: true) { h in
            for stream in [false, true] {
                let body = ProxyLiveTests.body(.chatCompletions, model: "tls-gpt", stream: stream)
                // Several in a row, so most go over a kept-alive connection.
                for _ in 0..<5 {
                    let reply = try await h.post(h.gatewayURL + "/v1/chat/completions", body: body)
                    #expect(reply.status == 200, "\(reply.text)")
                    let direct = try await h.post(
                        h.emulatorURL + "/v1/chat/completions",
                        body: body.replacingOccurrences(of: "tls-gpt", with: "upstream-gpt"), auth: false)
                    #expect(reply.body == direct.body)
                    let id = try #require(reply.headers.first(name: "x-request-id"))
                    let record = try #require(try await h.record(requestID: id))
                    #expect(record.status == .completed)
                    #expect(record.usage.completion > 0)
                }
            }
        }
    }

    @Test("a TLS upstream whose certificate the provider does not trust is 502, recorded, never sent the request")
    func untrustedTLS() async throws {
        try await LiveHarness.run(tlsUpstream: true) { h in
            let before = h.emulator.requests.count
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: ProxyLiveTests.body(.chatCompletions, model: "tls-untrusted-gpt", stream: false))
            #expect(reply.status == 502, "\(reply.text)")
            #expect(reply.json?["error"]?["code"]?.stringValue == "upstream_unreachable")
            #expect(h.emulator.requests.count == before)
            let id = try #require(reply.headers.first(name: "x-request-id"))
            let record = try #require(try await h.record(requestID: id))
            #expect(record.status != .completed)
            #expect(record.usage.completion == 0)
        }
    }

    @Test("a head slower than the idle timeout but within the first-byte timeout is served, not cut")
    func headWithinFirstByte() async throws {
        try await LiveHarness.run { h in
            // `sleepy`: first byte 10 s, idle read 3 s; the upstream waits 3.5 s before its head.
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: ProxyLiveTests.body(.chatCompletions, model: "sleepy-gpt", stream: false),
                headers: [("x-mock-stall-ms", "3500")])
            #expect(reply.status == 200, "\(reply.text)")
        }
    }

    @Test("plain HTTP to a TLS port fails fast as 502, not as a hang")
    func plainToTLS() async throws {
        try await LiveHarness.run(tlsUpstream: true) { h in
            let started = ContinuousClock.now
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: ProxyLiveTests.body(.chatCompletions, model: "tls-as-plain-gpt", stream: false))
            #expect(reply.status == 502 || reply.status == 504, "\(reply.text)")
            // A hang would run into the client's 30 s timeout; the margin is for the full suite's
            // CPU-bound tests, which can hold this task off the cooperative pool for seconds.
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }
}
