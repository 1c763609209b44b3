import AsyncHTTPClient
import Foundation
import Gateway
import GatewayMock
import Metering
import NIOCore
import NIOHTTP1
import Testing

/// The meter → settle → record stages through a live gateway: one record per request, for each usage
/// source and each status.
@Suite("Metering and the ledger over live sockets")
struct MeteringLiveTests {
    static let chat =
        #"{"model":"emu-gpt","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello to the metering gateway"}]}"#

    static func streamed(_ body: String) -> String {
        body.replacingOccurrences(of: #"{"model":"emu-gpt","#, with: #"{"model":"emu-gpt","stream":true,"#)
    }

    @Test("a completed JSON answer: billed from the upstream's usage, priced by hand, durable before the reply")
    func completedJSON() async throws {
        try await LiveHarness.run { h in
            let reply = try await h.post(h.gatewayURL + "/v1/chat/completions", body: Self.chat)
            #expect(reply.status == 200)
            let requestID = try #require(reply.headers.first(name: "x-request-id"))
            // No waiting: the record was committed before the last byte of the response left.
            let record = try #require(try h.records().first { $0.requestID == requestID })
            let usage = try #require(reply.json?["usage"])
            let prompt = try #require(usage["prompt_tokens"]?.intValue)
            let completion = try #require(usage["completion_tokens"]?.intValue)
            #expect(record.status == .completed && record.httpStatus == 200 && record.error == nil)
            #expect(record.usageSource == .upstream)
            #expect(record.usage == Usage(prompt: prompt, completion: completion))
            #expect(record.tenantID == h.tenant.id && record.provider == "emu" && record.model == "emu-gpt")
            #expect(record.upstreamModel == "upstream-gpt" && record.endpoint == "/v1/chat/completions")
            #expect(!record.stream && record.timeToFirstTokenMs != nil)
            #expect(record.localPromptTokens > 0 && record.localCompletionTokens > 0)
            // emu-gpt costs 2 CNY per million input tokens and 8 per million output tokens.
            let nanos = (Int64(prompt) * 2_000_000_000 + Int64(completion) * 8_000_000_000 + 500_000) / 1_000_000
            #expect(record.cost == Money(nanos: nanos, currency: "CNY"))
            #expect(record.priceEntry == "emu-gpt@2020-01-01T00:00:00Z")
        }
    }

    @Test("a stream without include_usage: usage is asked for upstream, billed, and stripped from the client")
    func injectedUsage() async throws {
        try await LiveHarness.run { h in
            let reply = try await h.post(h.gatewayURL + "/v1/chat/completions", body: Self.streamed(Self.chat))
            #expect(reply.status == 200)
            let forwarded = try #require(h.emulator.requests.first)
            let sent = try JSONReader.parse(forwarded.body)
            #expect(sent["stream_options"]?["include_usage"]?.boolValue == true)
            // What the upstream sent, minus what the client did not ask for, is what the client got.
            let direct = try await h.post(
                h.emulatorURL + "/v1/chat/completions", body: String(decoding: forwarded.body, as: UTF8.self),
                auth: false)
            let upstreamEvents = direct.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            let usageEvent = try #require(upstreamEvents.first { $0.contains(#""choices":[]"#) })
            let expected =
                upstreamEvents.filter { $0 != usageEvent }
                .map { $0.replacingOccurrences(of: #","usage":null"#, with: "") + "\n\n" }.joined()
            #expect(reply.text == expected)
            #expect(!reply.text.contains("usage"))
            let usage = try #require(
                JSONReader.parse(String(usageEvent.dropFirst("data: ".count)))["usage"])
            let requestID = try #require(reply.headers.first(name: "x-request-id"))
            let record = try #require(try h.records().first { $0.requestID == requestID })
            #expect(record.usageSource == .upstream && record.stream)
            #expect(record.usage.prompt == usage["prompt_tokens"]?.intValue)
            #expect(record.usage.completion == usage["completion_tokens"]?.intValue)
            // The local count sits beside the upstream's: the o200k count of the content delivered.
            let content = StreamText.openAIContent(reply.text)
            #expect(record.localCompletionTokens == (try TokenEncoding.named("o200k_base")).count(content))
        }
    }

    @Test("a stream cut mid-way is billed from the tokenizer: prompt estimate plus the deltas delivered")
    func cutStream() async throws {
        try await LiveHarness.run { h in
            let response = try await h.open(
                h.gatewayURL + "/v1/chat/completions", body: Self.streamed(Self.chat),
                headers: [("x-mock-cut-after", "3")])
            let requestID = try #require(response.headers.first(name: "x-request-id"))
            let received = await StreamText.readUntilEnd(response)
            let record = try #require(try await h.record(requestID: requestID))
            #expect(record.status == .upstreamCut && record.error == "upstream_cut")
            #expect(record.usageSource == .tokenizer)
            // What the client saw, counted independently of the gateway's meter.
            let deltas = StreamText.openAIContent(received)
            let o200k = try TokenEncoding.named("o200k_base")
            #expect(record.usage.completion == o200k.count(deltas))
            #expect(record.usage.completion > 0)
            #expect(record.usage.prompt == record.localPromptTokens && record.usage.prompt > 0)
            #expect(record.cost?.nanos ?? 0 > 0)
        }
    }

    @Test("Anthropic stream: message_start and message_delta usage, last output_tokens wins")
    func anthropicStream() async throws {
        try await LiveHarness.run { h in
            let body =
                #"{"model":"emu-claude","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Hello, Claude"}]}"#
            let reply = try await h.post(h.gatewayURL + "/v1/messages", body: body)
            #expect(reply.status == 200)
            var input = 0
            var output = 0
            for json in StreamText.events(reply.text) {
                if let u = json["message"]?["usage"] { input = u["input_tokens"]?.intValue ?? 0 }
                if let u = json["usage"], let o = u["output_tokens"]?.intValue { output = o }
            }
            let requestID = try #require(reply.headers.first(name: "x-request-id"))
            let record = try #require(try h.records().first { $0.requestID == requestID })
            #expect(record.usageSource == .upstream && record.status == .completed)
            #expect(record.usage == Usage(prompt: input, completion: output))
            #expect(record.localIsEstimate == false || record.localPromptTokens > 0)
        }
    }

    @Test("embeddings and the responses API are billed from their usage")
    func embeddingsAndResponses() async throws {
        try await LiveHarness.run { h in
            let embedding = try await h.post(
                h.gatewayURL + "/v1/embeddings", body: #"{"model":"emu-gpt","input":["first text","second text"]}"#)
            let responses = try await h.post(
                h.gatewayURL + "/v1/responses", body: #"{"model":"emu-gpt","stream":true,"input":"One line."}"#)
            for reply in [embedding, responses] {
                #expect(reply.status == 200)
                let id = try #require(reply.headers.first(name: "x-request-id"))
                let record = try #require(try h.records().first { $0.requestID == id })
                #expect(record.usageSource == .upstream && record.usage.prompt > 0)
            }
        }
    }

    @Test("a client that goes away: upstream stopped, record written with what was delivered")
    func clientDisconnect() async throws {
        try await LiveHarness.run { h in
            let firstChunk = AsyncStream<String>.makeStream()
            let reader = Task {
                let response = try await h.open(
                    h.gatewayURL + "/v1/chat/completions", body: Self.streamed(Self.chat),
                    headers: [("x-mock-chunks", "20"), ("x-mock-delay-ms", "200")])
                var iterator = response.body.makeAsyncIterator()
                _ = try await iterator.next()
                firstChunk.continuation.yield(response.headers.first(name: "x-request-id") ?? "")
                while try await iterator.next() != nil {}
            }
            var ids = firstChunk.stream.makeAsyncIterator()
            let requestID = try #require(await ids.next())
            reader.cancel()
            let record = try #require(try await h.record(requestID: requestID))
            #expect(record.status == .clientDisconnected && record.error == "client_disconnected")
            #expect(record.usageSource == .tokenizer)
            #expect(record.usage.completion < 40)
        }
    }

    @Test("refusals before forwarding are recorded as rejected at zero cost; upstream failures cost nothing")
    func rejectedAndFailed() async throws {
        try await LiveHarness.run { h in
            let unknown = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: #"{"model":"nope","messages":[]}"#)
            let bad = try await h.post(h.gatewayURL + "/v1/chat/completions", body: #"{"model":"emu-gpt","#)
            let upstream500 = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: Self.chat, headers: [("x-mock-status", "503")])
            let upstream429 = try await h.post(
                h.gatewayURL + "/v1/chat/completions", body: Self.chat, headers: [("x-mock-status", "429")])
            let dead = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.chat.replacingOccurrences(of: "emu-gpt", with: "dead-gpt"))
            let cases: [(LiveHarness.Reply, BillingRecord.Status, Int)] = [
                (unknown, .rejected, 404), (bad, .rejected, 400), (upstream500, .upstreamError, 502),
                (upstream429, .upstreamError, 429), (dead, .upstreamUnavailable, 502),
            ]
            for (reply, status, code) in cases {
                #expect(reply.status == code)
                let id = try #require(reply.headers.first(name: "x-request-id"))
                let record = try #require(try await h.record(requestID: id))
                #expect(record.status == status, "\(reply.text)")
                #expect(record.httpStatus == code)
                #expect(record.usage == Usage() && record.usageSource == .none)
                #expect((record.cost?.nanos ?? 0) == 0)
            }
            // A request without a valid key has no tenant to bill and leaves no record.
            let before = try h.records().count
            _ = try await h.post(h.gatewayURL + "/v1/chat/completions", body: Self.chat, auth: false)
            #expect(try h.records().count == before)
        }
    }

    @Test("an Anthropic stream cut after message_start bills the reported prompt and the counted completion")
    func mixedSource() async throws {
        try await LiveHarness.run { h in
            let body =
                #"{"model":"emu-claude","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Hello, Claude"}]}"#
            let response = try await h.open(
                h.gatewayURL + "/v1/messages", body: body, headers: [("x-mock-cut-after", "4")])
            let requestID = try #require(response.headers.first(name: "x-request-id"))
            let received = await StreamText.readUntilEnd(response)
            let record = try #require(try await h.record(requestID: requestID))
            #expect(record.status == .upstreamCut)
            #expect(record.usageSource == .mixed)
            var input = 0
            var text = ""
            for json in StreamText.events(received) {
                if let u = json["message"]?["usage"] { input = u["input_tokens"]?.intValue ?? 0 }
                text += json["delta"]?["text"]?.stringValue ?? ""
            }
            #expect(record.usage.prompt == input && input > 0)
            #expect(record.usage.completion == (try TokenEncoding.named("o200k_base")).count(text))
            #expect(record.usage.completion > 1)
        }
    }

    @Test("a timeout before the response headers is recorded as upstream_timeout at zero cost")
    func timeoutRecord() async throws {
        try await LiveHarness.run { h in
            let reply = try await h.post(
                h.gatewayURL + "/v1/chat/completions",
                body: Self.chat.replacingOccurrences(of: "emu-gpt", with: "slow-gpt"),
                headers: [("x-mock-stall-ms", "1500")])
            #expect(reply.status == 504)
            let id = try #require(reply.headers.first(name: "x-request-id"))
            let record = try #require(try await h.record(requestID: id))
            #expect(record.status == .upstreamTimeout && record.error == "upstream_timeout" && record.httpStatus == 504)
            #expect(record.usageSource == .none && record.usage == Usage())
        }
    }

    @Test("/metrics: requests, tokens, cost, latency and ledger series, labelled without tenants")
    func metrics() async throws {
        try await LiveHarness.run { h in
            _ = try await h.post(h.gatewayURL + "/v1/chat/completions", body: Self.chat)
            let text = try await h.get(h.gatewayURL + "/metrics").text
            #expect(text.contains(#"gateway_requests_total{provider="emu",model="emu-gpt",status="completed"} 1"#))
            #expect(text.contains(#"gateway_tokens_total{provider="emu",model="emu-gpt",kind="prompt"}"#))
            #expect(text.contains(#"gateway_cost_nanos_total{provider="emu",model="emu-gpt",currency="CNY"}"#))
            for series in [
                "gateway_request_duration_seconds_bucket", "gateway_time_to_first_token_seconds_bucket",
                "gateway_tokenizer_seconds_count", "gateway_ledger_commit_seconds_count",
                "gateway_ledger_queue_depth_records",
            ] {
                #expect(text.contains(series), "\(series)")
            }
            #expect(!text.contains("tenant"))
            #expect(!text.contains(h.tenant.id))
        }
    }
}

/// Reading streamed answers the way a client sees them, independently of the gateway's own meter.
enum StreamText {
    /// The body as far as it arrived; a stream cut by the gateway ends with an error, which is expected.
    static func readUntilEnd(_ response: HTTPClientResponse) async -> String {
        var received = ""
        do {
            for try await chunk in response.body { received += String(buffer: chunk) }
        } catch {}
        return received
    }

    /// The JSON payload of each event's `data:` line.
    static func events(_ text: String) -> [JSONValue] {
        text.components(separatedBy: "\n\n").compactMap { event in
            guard let line = event.split(separator: "\n").first(where: { $0.hasPrefix("data: ") }) else { return nil }
            return try? JSONReader.parse(String(line.dropFirst(6)))
        }
    }

    /// The concatenated `content` deltas of the first choice of an OpenAI stream.
    static func openAIContent(_ text: String) -> String {
        events(text).map { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? "" }.joined()
    }
}
