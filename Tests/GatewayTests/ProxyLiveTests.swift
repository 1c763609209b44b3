import AsyncHTTPClient
import Foundation
import Gateway
import GatewayMock
import HTTPTypes
import Metering
import NIOCore
import NIOHTTP1
import Testing

/// End-to-end: a client → the gateway → the upstream emulator, all on loopback sockets.
@Suite("Proxy over live sockets")
struct ProxyLiveTests {
    /// One representative body per endpoint, for the given public model.
    /// Streamed chat and completion bodies ask for usage themselves, so the gateway forwards them
    /// unchanged and the client gets the upstream's bytes exactly (injection is tested on its own).
    static func body(_ endpoint: APIEndpoint, model: String, stream: Bool) -> String {
        let s = stream ? #"true,"stream_options":{"include_usage":true}"# : "false"
        switch endpoint {
        case .chatCompletions:
            return
                #"{"model":"\#(model)","stream":\#(s),"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello to the metering gateway"}]}"#
        case .completions:
            return #"{"model":"\#(model)","stream":\#(s),"prompt":"Once upon a time","max_tokens":40}"#
        case .embeddings:
            return #"{"model":"\#(model)","input":["first text","second text"]}"#
        case .responses:
            let s = stream ? "true" : "false"
            return #"{"model":"\#(model)","stream":\#(s),"input":"Write one line about tokens."}"#
        case .messages:
            let s = stream ? "true" : "false"
            return
                #"{"model":"\#(model)","stream":\#(s),"max_tokens":64,"messages":[{"role":"user","content":"Hello, Claude"}]}"#
        }
    }

    static func publicModel(_ endpoint: APIEndpoint) -> (String, String) {
        endpoint == .messages ? ("emu-claude", "emu-claude") : ("emu-gpt", "upstream-gpt")
    }

    @Test("bodies arrive byte-identical to what the upstream sent", arguments: APIEndpoint.allCases, [false, true])
    func byteIdentical(endpoint: APIEndpoint, stream: Bool) async throws {
        if stream && !endpoint.canStream { return }
        try await LiveHarness.run { h in
            let (model, upstreamModel) = Self.publicModel(endpoint)
            let viaGateway = try await h.post(
                h.gatewayURL + endpoint.rawValue, body: Self.body(endpoint, model: model, stream: stream))
            #expect(viaGateway.status == 200, "\(viaGateway.text)")
            // The gateway rewrote the model name; the same rewritten body sent directly gives the bytes
            // the upstream produced.
            let direct = try await h.post(
                h.emulatorURL + endpoint.rawValue, body: Self.body(endpoint, model: upstreamModel, stream: stream),
                auth: false)
            #expect(direct.status == 200)
            #expect(viaGateway.body == direct.body)
            #expect(!viaGateway.body.isEmpty)
            if stream {
                #expect(viaGateway.headers.first(name: "content-type") == "text/event-stream")
                #expect(viaGateway.text.contains("data: "))
            }
            let seen = try #require(h.emulator.requests.first)
            #expect(seen.path == endpoint.rawValue)
            let forwarded = try JSONReader.parse(seen.body)
            #expect(forwarded["model"]?.stringValue == upstreamModel)
        }
    }

    @Test("client credentials never reach the upstream; the provider key never reaches the client")
    func headerHygiene() async throws {
        try await LiveHarness.run { h in
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "emu-gpt", stream: false),
                headers: [
                    ("x-api-key", h.clientKey), ("cookie", "session=\(h.clientKey)"), ("x-trace-note", "kept"),
                    ("accept-encoding", "gzip, br"), ("proxy-authorization", "Basic abc"),
                    ("openai-organization", "org-client"),
                ])
            #expect(reply.status == 200)
            let seen = try #require(h.emulator.requests.last)
            #expect(seen.headers[.authorization] == "Bearer \(LiveHarness.upstreamSecret)")
            #expect(seen.headers[.acceptEncoding] == "identity")
            #expect(seen.headers[HTTPFieldName("x-trace-note")] == "kept")
            for field in seen.headers {
                #expect(!field.value.contains(h.clientKey), "client key leaked upstream in \(field.name)")
                #expect(field.name.canonicalName != "cookie")
                #expect(field.name.canonicalName != "proxy-authorization")
                #expect(field.name.canonicalName != "openai-organization")
            }
            let requestID = try #require(reply.headers.first(name: "x-request-id"))
            #expect(requestID.hasPrefix("req_"))
            #expect(seen.headers[HTTPFieldName("x-request-id")] == requestID)
            for header in reply.headers {
                #expect(!header.value.contains(LiveHarness.upstreamSecret))
            }
            #expect(!reply.text.contains(LiveHarness.upstreamSecret))

            // Anthropic upstreams get the provider key as x-api-key, and a version header.
            let claude = try await h.post(
                h.gatewayURL + "/v1/messages", body: Self.body(.messages, model: "emu-claude", stream: false),
                headers: [("x-api-key", h.clientKey)], auth: false)
            #expect(claude.status == 200)
            let seenClaude = try #require(h.emulator.requests.last)
            #expect(seenClaude.headers[HTTPFieldName("x-api-key")] == LiveHarness.upstreamSecret)
            #expect(seenClaude.headers[.authorization] == nil)
            #expect(seenClaude.headers[HTTPFieldName("anthropic-version")] == "2023-06-01")
        }
    }

    @Test("the first chunk reaches the client while the upstream holds the rest back")
    func streamsBeforeUpstreamFinishes() async throws {
        try await LiveHarness.run { h in
            let response = try await h.open(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "emu-gpt", stream: true),
                headers: [("x-mock-hold", "gate-1")])
            #expect(response.status == .ok)
            var iterator = response.body.makeAsyncIterator()
            // The emulator sent one chunk and now waits for `release`: this read can only succeed if the
            // gateway forwarded that chunk without waiting for the end of the stream.
            // (If the gateway buffered, this read would hit the client's read timeout and fail.)
            let first = try await iterator.next()
            let firstText = String(buffer: try #require(first))
            #expect(firstText.hasPrefix("data: {"))
            #expect(!firstText.contains("[DONE]"))
            h.emulator.release("gate-1")
            var rest = ""
            while let chunk = try await iterator.next() { rest += String(buffer: chunk) }
            #expect(rest.hasSuffix("data: [DONE]\n\n"))
        }
    }

    @Test("missing, unknown and revoked keys get 401 in the client's format")
    func authentication() async throws {
        try await LiveHarness.run { h in
            let chat = Self.body(.chatCompletions, model: "emu-gpt", stream: false)
            let missing = try await h.post(h.gatewayURL + "/v1/chat/completions", body: chat, auth: false)
            #expect(missing.status == 401)
            #expect(missing.json?["error"]?["code"]?.stringValue == "invalid_api_key")
            #expect(missing.json?["error"]?["type"]?.stringValue == "invalid_request_error")

            let unknown = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: chat,
                headers: [("authorization", "Bearer sk-gw-not-a-real-key")], auth: false)
            #expect(unknown.status == 401)
            #expect(unknown.json?["error"]?["message"]?.stringValue != nil)

            let anthropic = try await h.post(
                h.gatewayURL + "/v1/messages", body: Self.body(.messages, model: "emu-claude", stream: false),
                headers: [("x-api-key", "wrong")], auth: false)
            #expect(anthropic.status == 401)
            #expect(anthropic.json?["type"]?.stringValue == "error")
            #expect(anthropic.json?["error"]?["type"]?.stringValue == "authentication_error")
            #expect(h.emulator.requests.isEmpty, "a rejected request must not reach the upstream")

            // Revocation from the store (as the CLI does, possibly from another process) takes effect
            // on the running gateway within a second.
            let (key, secret) = try h.store.createKey(tenant: h.tenant.id)
            let ok = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: chat, headers: [("authorization", "Bearer \(secret)")],
                auth: false)
            #expect(ok.status == 200)
            // Spaces or tabs between the scheme and the key are not part of the key.
            let padded = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: chat,
                headers: [("authorization", "Bearer  \t \(secret)")], auth: false)
            #expect(padded.status == 200)
            try h.store.revokeKey(key.id)
            let revokedAt = ContinuousClock.now
            var status = 200
            while status == 200 && ContinuousClock.now - revokedAt < .seconds(3) {
                status = try await h.post(
                    h.gatewayURL + "/v1/chat/completions", body: chat,
                    headers: [("authorization", "Bearer \(secret)")], auth: false
                ).status
                if status == 200 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(status == 401)
            #expect(ContinuousClock.now - revokedAt < .seconds(1))
        }
    }

    @Test("bodies over the limit get 413 in the client's format")
    func tooLarge() async throws {
        try await LiveHarness.run(maxBody: 4096) { h in
            let big = String(repeating: "x", count: 10_000)
            let chat = #"{"model":"emu-gpt","messages":[{"role":"user","content":"\#(big)"}]}"#
            let reply = try await h.post(h.gatewayURL + "/v1/chat/completions", body: chat)
            #expect(reply.status == 413)
            #expect(reply.json?["error"]?["code"]?.stringValue == "request_too_large")
            let msg = #"{"model":"emu-claude","max_tokens":5,"messages":[{"role":"user","content":"\#(big)"}]}"#
            let claude = try await h.post(h.gatewayURL + "/v1/messages", body: msg)
            #expect(claude.status == 413)
            #expect(claude.json?["error"]?["type"]?.stringValue == "request_too_large")
            #expect(h.emulator.requests.isEmpty)
        }
    }

    @Test("upstream 5xx and a refused connection become 502; no key configured becomes 503")
    func upstreamFailures() async throws {
        try await LiveHarness.run { h in
            let chat = Self.body(.chatCompletions, model: "emu-gpt", stream: false)
            let fault = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: chat, headers: [("x-mock-status", "503")])
            #expect(fault.status == 502)
            #expect(fault.json?["error"]?["code"]?.stringValue == "upstream_error")
            #expect(fault.json?["error"]?["message"]?.stringValue?.contains("503") == true)

            let claudeFault = try await h.post(
                h.gatewayURL + "/v1/messages", body: Self.body(.messages, model: "emu-claude", stream: true),
                headers: [("x-mock-status", "500")])
            #expect(claudeFault.status == 502)
            #expect(claudeFault.json?["type"]?.stringValue == "error")
            #expect(claudeFault.json?["error"]?["type"]?.stringValue == "api_error")

            // A 4xx from the upstream is the client's own problem: passed through unchanged.
            let clientError = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: chat, headers: [("x-mock-status", "429")])
            #expect(clientError.status == 429)

            let refused = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "dead-gpt", stream: false))
            #expect(refused.status == 502)
            #expect(refused.json?["error"]?["code"]?.stringValue == "upstream_unreachable")

            let keyless = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "keyless-gpt", stream: false))
            #expect(keyless.status == 503)
            #expect(keyless.json?["error"]?["message"]?.stringValue?.contains("NOT_SET_ANYWHERE_KEY") == true)
        }
    }

    @Test("no response headers within the first-byte timeout becomes 504")
    func firstByteTimeout() async throws {
        try await LiveHarness.run { h in
            let started = ContinuousClock.now
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "slow-gpt", stream: false),
                headers: [("x-mock-stall-ms", "8000")])
            #expect(reply.status == 504)
            #expect(reply.json?["error"]?["code"]?.stringValue == "upstream_timeout")
            // Before the upstream's 8 s stall ends (with room for a loaded two-core machine, whose other
            // tests can hold this task off the cooperative pool for seconds).
            #expect(ContinuousClock.now - started < .milliseconds(7500))
        }
    }

    @Test("a stream cut upstream reaches the client as a truncated response, after the chunks already sent")
    func streamCut() async throws {
        try await LiveHarness.run { h in
            let body = Self.body(.chatCompletions, model: "emu-gpt", stream: true)
            let complete = try await h.post(
                h.emulatorURL + "/v1/chat/completions",
                body: body.replacingOccurrences(of: "emu-gpt", with: "upstream-gpt"), auth: false)
            let events = complete.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count > 4)

            let response = try await h.open(
                h.gatewayURL + "/v1/chat/completions", body: body, headers: [("x-mock-cut-after", "3")])
            #expect(response.status == .ok)
            var received = ""
            var failed = false
            do {
                for try await chunk in response.body { received += String(buffer: chunk) }
            } catch {
                failed = true
            }
            #expect(failed, "the client must see that the stream did not end cleanly")
            #expect(received == events.prefix(3).map { $0 + "\n\n" }.joined())
        }
    }

    @Test("a JSON answer over 64 KiB streams before the upstream finishes; one cut mid-body arrives truncated")
    func largeAndCutJSON() async throws {
        try await LiveHarness.run { h in
            let body = Self.body(.chatCompletions, model: "emu-gpt", stream: false)
            // About 500 KB in two writes; the emulator holds the second until released. Answers up to
            // 64 KiB are recorded first and sent whole; a longer one must not wait for its end.
            let large = [("x-mock-words", "80000"), ("x-mock-chunks", "2")]
            let complete = try await h.post(
                h.emulatorURL + "/v1/chat/completions",
                body: body.replacingOccurrences(of: "emu-gpt", with: "upstream-gpt"), headers: large,
                auth: false)
            #expect(complete.body.count > 400_000)
            // If the gateway waited for the whole body, only this would end the wait, and the test fails.
            let watchdog = Task {
                try await Task.sleep(for: .seconds(10))
                h.emulator.release("json-1")
                return true
            }
            let response = try await h.open(
                h.gatewayURL + "/v1/chat/completions", body: body, headers: large + [("x-mock-hold", "json-1")])
            #expect(response.status == .ok)
            var iterator = response.body.makeAsyncIterator()
            var received = [UInt8]()
            // Reads that succeed while the emulator holds the second half: the gateway streamed. (It
            // keeps the latest chunk back until the record is written, so not all of the first half.)
            while received.count <= 64 << 10, let chunk = try await iterator.next() {
                received += chunk.readableBytesView
            }
            watchdog.cancel()
            let waitedForEnd = (try? await watchdog.value) ?? false
            #expect(!waitedForEnd, "the first 64 KiB waited for the end of the body")
            #expect(received.count > 64 << 10)
            h.emulator.release("json-1")
            while let chunk = try await iterator.next() { received += chunk.readableBytesView }
            #expect(received == complete.body)

            let cut = try await h.open(
                h.gatewayURL + "/v1/chat/completions", body: body,
                headers: [("x-mock-chunks", "3"), ("x-mock-cut-after", "1")])
            #expect(cut.status == .ok)
            var partial = [UInt8]()
            var failed = false
            do {
                for try await chunk in cut.body { partial += chunk.readableBytesView }
            } catch {
                failed = true
            }
            #expect(failed, "the client must see that the body did not end cleanly")
            #expect(!partial.isEmpty && partial.count < complete.body.count)
            let statuses = try h.records().map(\.status)
            #expect(statuses == [.completed, .upstreamCut])
        }
    }

    @Test("a stream that goes silent past the idle timeout is cut")
    func idleTimeout() async throws {
        try await LiveHarness.run { h in
            let response = try await h.open(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "sleepy-gpt", stream: true),
                headers: [("x-mock-stall-after", "2"), ("x-mock-stall-ms", "8000")])
            #expect(response.status == .ok)
            let started = ContinuousClock.now
            var received = 0
            var failed = false
            do {
                for try await chunk in response.body { received += chunk.readableBytes }
            } catch {
                failed = true
            }
            #expect(failed)
            #expect(received > 0)
            // Cut after the 3 s idle timeout, long before the upstream would have gone on.
            #expect(ContinuousClock.now - started < .milliseconds(6000))
        }
    }

    @Test("unknown paths and models get 404 in the client's format")
    func notFound() async throws {
        try await LiveHarness.run { h in
            let path = try await h.post(h.gatewayURL + "/v1/nonexistent", body: "{}")
            #expect(path.status == 404)
            #expect(path.json?["error"]?["type"]?.stringValue == "invalid_request_error")
            let anthropicPath = try await h.post(h.gatewayURL + "/v1/messages/batches/x", body: "{}")
            #expect(anthropicPath.status == 404)
            #expect(anthropicPath.json?["error"]?["type"]?.stringValue == "not_found_error")
            let model = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.body(.chatCompletions, model: "no-such-model", stream: false))
            #expect(model.status == 404)
            #expect(model.json?["error"]?["code"]?.stringValue == "model_not_found")
            let bad = try await h.post(h.gatewayURL + "/v1/chat/completions", body: "{not json")
            #expect(bad.status == 400)
            #expect(bad.json?["error"]?["type"]?.stringValue == "invalid_request_error")
        }
    }

    @Test("health, readiness and the model list")
    func healthAndModels() async throws {
        try await LiveHarness.run { h in
            #expect(try await h.get(h.gatewayURL + "/healthz").status == 200)
            #expect(try await h.get(h.gatewayURL + "/readyz").status == 200)
            let unauthorized = try await h.get(h.gatewayURL + "/v1/models")
            #expect(unauthorized.status == 401)
            let models = try await h.get(
                h.gatewayURL + "/v1/models", headers: [("authorization", "Bearer \(h.clientKey)")])
            #expect(models.status == 200)
            let ids = models.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            #expect(ids == h.config.models.map(\.name))
        }
    }

    @Test("the built-in mock provider answers in both formats and injects faults", arguments: APIEndpoint.allCases)
    func mockProvider(endpoint: APIEndpoint) async throws {
        try await LiveHarness.run { h in
            let plain = try await h.post(
                h.gatewayURL + endpoint.rawValue, body: Self.body(endpoint, model: "mock-gpt", stream: false))
            #expect(plain.status == 200, "\(plain.text)")
            #expect(plain.json != nil)
            let again = try await h.post(
                h.gatewayURL + endpoint.rawValue, body: Self.body(endpoint, model: "mock-gpt", stream: false))
            #expect(plain.body == again.body, "the mock is deterministic")
            if endpoint.canStream {
                let streamed = try await h.post(
                    h.gatewayURL + endpoint.rawValue, body: Self.body(endpoint, model: "mock-gpt", stream: true),
                    headers: [("x-mock-chunks", "3")])
                #expect(streamed.status == 200)
                #expect(streamed.text.hasPrefix(endpoint == .messages || endpoint == .responses ? "event: " : "data: "))
            }
            let fault = try await h.post(
                h.gatewayURL + endpoint.rawValue, body: Self.body(endpoint, model: "mock-gpt", stream: false),
                headers: [("x-mock-status", "500")])
            #expect(fault.status == 502)
            #expect(h.emulator.requests.isEmpty, "the mock answers in process")
        }
    }
}

typealias HTTPFieldName = HTTPTypes.HTTPField.Name

extension HTTPTypes.HTTPField.Name {
    init(_ name: String) { self.init(name)! }
}

@Suite("Token count endpoints over live sockets")
struct TokenCountEndpointTests {
    @Test("Anthropic count_tokens, OpenAI input_tokens and chat count_tokens answer the gateway's count")
    func countEndpoints() async throws {
        try await LiveHarness.run { h in
            let chat = #"{"model":"emu-gpt","messages":[{"role":"user","content":"How many tokens is this?"}]}"#
            let counted = try await h.post(h.gatewayURL + "/v1/chat/completions/count_tokens", body: chat)
            #expect(counted.status == 200, "\(counted.text)")
            let encoding = try TokenEncoding.named("o200k_base")
            // Cookbook formula: 3 per message + role + content, 3 for the reply.
            let expected = 3 + encoding.count("user") + encoding.count("How many tokens is this?") + 3
            #expect(counted.json?["input_tokens"]?.intValue == expected)
            // "upstream-gpt" is no public model family, so o200k is an estimate for it.
            #expect(counted.headers.first(name: "x-gateway-token-count") == "estimate")

            let responses = try await h.post(
                h.gatewayURL + "/v1/responses/input_tokens", body: #"{"model":"emu-gpt","input":"Count me"}"#)
            #expect(responses.status == 200)
            #expect(responses.json?["object"]?.stringValue == "response.input_tokens")
            #expect((responses.json?["input_tokens"]?.intValue ?? 0) > 0)

            let anthropic = try await h.post(
                h.gatewayURL + "/v1/messages/count_tokens",
                body:
                    #"{"model":"emu-claude","system":"Be brief.","messages":[{"role":"user","content":"Hello, Claude"}]}"#,
                headers: [("x-api-key", h.clientKey)], auth: false)
            #expect(anthropic.status == 200, "\(anthropic.text)")
            #expect((anthropic.json?["input_tokens"]?.intValue ?? 0) > 0)
            #expect(anthropic.headers.first(name: "x-gateway-token-count") == "estimate")

            let unauthorized = try await h.post(h.gatewayURL + "/v1/messages/count_tokens", body: "{}", auth: false)
            #expect(unauthorized.status == 401)
            #expect(unauthorized.json?["type"]?.stringValue == "error")
            let unknown = try await h.post(
                h.gatewayURL + "/v1/chat/completions/count_tokens", body: #"{"model":"nope","messages":[]}"#)
            #expect(unknown.status == 404)
            #expect(h.emulator.requests.isEmpty, "counting never calls the upstream")
        }
    }
}
