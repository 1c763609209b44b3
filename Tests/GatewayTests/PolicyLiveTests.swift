import AsyncHTTPClient
import Foundation
import Gateway
import GatewayMock
import Metering
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// The admit stage through a live gateway: budgets and rate limits under concurrent load.
@Suite("Policies over live sockets")
struct PolicyLiveTests {
    static let chat =
        #"{"model":"emu-gpt","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"Count my tokens, exactly."}]}"#

    @Test("200 concurrent requests against a budget that admits exactly N by estimate: N admitted, no overspend")
    func concurrentBudget() async throws {
        try await LiveHarness.run { h in
            // The gateway's own estimate: exact prompt tokens + max_tokens, priced at 2 and 8 CNY per million.
            let counted = try await h.post(h.gatewayURL + "/v1/chat/completions/count_tokens", body: Self.chat)
            let prompt = try #require(counted.json?["input_tokens"]?.intValue)
            let estimate = (Int64(prompt) * 2_000_000_000 + 100 * 8_000_000_000 + 500_000) / 1_000_000
            let n = 37
            let limit = Money(nanos: estimate * Int64(n) + estimate / 2, currency: "CNY")
            try h.store.setBudget(h.tenant.id, limit: limit.decimalString, currency: "CNY", period: .month)
            try await Task.sleep(for: .milliseconds(600))  // the gateway sees the change on its next poll

            let rejected = Tally()
            let headersIn = Tally()
            let statuses = try await withThrowingTaskGroup(of: (Int, String?, String?).self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let response = try await h.open(
                            h.gatewayURL + "/v1/chat/completions", body: Self.chat,
                            headers: [("x-mock-hold", "g\(i)"), ("content-type", "application/json")])
                        let status = Int(response.status.code)
                        if status == 429 {
                            rejected.add()
                        } else {
                            headersIn.add()
                        }
                        var body = ""
                        for try await chunk in response.body { body += String(buffer: chunk) }
                        return (status, response.headers.first(name: "retry-after"), body)
                    }
                }
                // Everything admitted is now held upstream after its first chunk; rejections came back at once.
                let deadline = ContinuousClock.now + .seconds(20)
                while rejected.count + headersIn.count < 200, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                for i in 0..<200 { h.emulator.release("g\(i)") }
                var all: [(Int, String?, String?)] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(statuses.filter { $0.0 == 200 }.count == n)
            #expect(statuses.filter { $0.0 == 429 }.count == 200 - n)
            let refusal = try #require(statuses.first { $0.0 == 429 })
            #expect(refusal.1 != nil)
            #expect(refusal.2?.contains(#""code":"insufficient_quota""#) == true)

            let records = try h.records()
            let completed = records.filter { $0.status == .completed }
            #expect(completed.count == n)
            #expect(records.filter { $0.status == .rejected && $0.error == "insufficient_quota" }.count == 200 - n)
            // No overspend: what was charged stays within the budget, and each record shows its estimate error.
            let charged = completed.reduce(Int64(0)) { $0 + ($1.budgetCharge?.nanos ?? 0) }
            #expect(charged <= limit.nanos)
            for r in completed {
                #expect(r.estimatedCost?.nanos == estimate && r.estimatedTokens == prompt + 100)
                #expect((r.cost?.nanos ?? 0) <= estimate)
            }
        }
    }

    static let plans = """
        default_plan: limited
        plans:
          limited:
            models: [emu-gpt, emu-claude, mock-gpt]
            max_output_tokens: 500
            rate_limits:
              key: {requests_per_minute: 5}
        """

    @Test("a burst against 5 requests per minute: exactly 5 pass, the rest get 429 with Retry-After and x-ratelimit-*")
    func rateLimitBurst() async throws {
        try await LiveHarness.run(plans: Self.plans) { h in
            let body = #"{"model":"emu-gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
            let replies = try await withThrowingTaskGroup(of: LiveHarness.Reply.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await h.post(h.gatewayURL + "/v1/chat/completions", body: body) }
                }
                var all: [LiveHarness.Reply] = []
                for try await r in group { all.append(r) }
                return all
            }
            #expect(replies.filter { $0.status == 200 }.count == 5)
            let limited = replies.filter { $0.status == 429 }
            #expect(limited.count == 15)
            let one = try #require(limited.first)
            #expect(one.json?["error"]?["code"]?.stringValue == "rate_limit_exceeded")
            #expect(Int(one.headers.first(name: "retry-after") ?? "") ?? 0 > 0)
            #expect(one.headers.first(name: "x-ratelimit-limit-requests") == "5")
            #expect(one.headers.first(name: "x-ratelimit-remaining-requests") == "0")
            let ok = try #require(replies.first { $0.status == 200 })
            #expect(ok.headers.first(name: "x-ratelimit-limit-requests") == "5")

            // Over the limit on /v1/messages: Anthropic's error format, with the same headers.
            let anthropic = try await h.post(
                h.gatewayURL + "/v1/messages",
                body: #"{"model":"emu-claude","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#)
            #expect(anthropic.status == 429)
            #expect(anthropic.json?["type"]?.stringValue == "error")
            #expect(anthropic.json?["error"]?["type"]?.stringValue == "rate_limit_error")
            #expect(anthropic.headers.first(name: "retry-after") != nil)

            // The plan's allow-list and output cap, in each client's own error format.
            let other = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: #"{"model":"slow-gpt","messages":[{"role":"user","content":"hi"}]}"#)
            #expect(other.status == 403 && other.json?["error"]?["code"]?.stringValue == "model_not_allowed")
            let claude = try await h.post(
                h.gatewayURL + "/v1/messages",
                body: #"{"model":"emu-claude","max_tokens":900,"messages":[{"role":"user","content":"hi"}]}"#)
            #expect(claude.status == 400)
            #expect(claude.json?["type"]?.stringValue == "error")
            #expect(claude.json?["error"]?["type"]?.stringValue == "invalid_request_error")
        }
    }
}

/// A counter shared by concurrent tasks.
final class Tally: Sendable {
    private let value = Mutex(0)
    func add() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}
