#if os(Linux)
    import AsyncHTTPClient
    import Foundation
    import Gateway
    import GatewayMock
    import HTTPTypes
    import Metering
    import NIOCore
    import NIOHTTP1
    import Testing

    /// A hostile client against a live gateway: every defect found at the edges, each reproduced here.
    @Suite("Hardening over live sockets")
    struct HardeningLiveTests {
        static let huge = "9223372036854775807"

        /// Waits until `predicate` holds for the ledger (records are written after the client is gone).
        static func eventually(
            _ h: LiveHarness, timeout: Duration = .seconds(5), _ predicate: ([BillingRecord]) -> Bool
        ) async throws -> [BillingRecord] {
            let deadline = ContinuousClock.now + timeout
            var records = try h.records()
            while !predicate(records) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(25))
                records = try h.records()
            }
            return records
        }

        @Test("max_tokens of 2^63-1 on every endpoint gets 400 naming the field; the process lives on")
        func extremeOutputLimits() async throws {
            try await LiveHarness.run { h in
                let cases: [(String, String, String)] = [
                    (
                        "/v1/chat/completions", #""model":"emu-gpt","messages":[{"role":"user","content":"x"}]"#,
                        "max_tokens"
                    ),
                    (
                        "/v1/chat/completions",
                        #""model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"x"}]"#,
                        "max_completion_tokens"
                    ),
                    ("/v1/completions", #""model":"emu-gpt","prompt":"x""#, "max_tokens"),
                    ("/v1/responses", #""model":"emu-gpt","input":"x""#, "max_output_tokens"),
                    ("/v1/messages", #""model":"emu-claude","messages":[{"role":"user","content":"x"}]"#, "max_tokens"),
                ]
                for (path, fields, member) in cases {
                    for value in [Self.huge, "131073"] {
                        let reply = try await h.post(h.gatewayURL + path, body: "{\(fields),\"\(member)\":\(value)}")
                        #expect(reply.status == 400, "\(path) \(member)=\(value): \(reply.text)")
                        if path == "/v1/messages" {
                            #expect(reply.json?["error"]?["type"]?.stringValue == "invalid_request_error")
                        } else {
                            #expect(reply.json?["error"]?["param"]?.stringValue == member)
                            #expect(reply.json?["error"]?["code"]?.stringValue == "max_tokens_too_large")
                        }
                    }
                }
                // An upstream that reports absurd usage is not believed: billed from local counts.
                let ok = try await h.post(
                    h.gatewayURL + "/v1/chat/completions",
                    body: #"{"model":"emu-gpt","max_tokens":10,"messages":[{"role":"user","content":"still here"}]}"#)
                #expect(ok.status == 200)
                let rejected = try h.records().filter { $0.status == .rejected }
                #expect(rejected.count == cases.count * 2)
                #expect(rejected.allSatisfy { $0.error == "max_tokens_too_large" || $0.httpStatus == 400 })
            }
        }

        @Test("a client that resets while the gateway waits for the upstream's head: record written, slot freed")
        func resetBeforeHead() async throws {
            try await LiveHarness.run { h in
                _ = try h.store.setKeyLimits(h.clientKey.prefix(12).description, limits: RateLimits(concurrent: 2))
                try await Task.sleep(for: .milliseconds(600))  // the key directory's poll
                for (model, stream) in [("emu-gpt", true), ("mock-gpt", true), ("emu-gpt", false), ("mock-gpt", false)]
                {
                    let before = try h.records().count
                    var clients: [RawClient] = []
                    for _ in 0..<2 {
                        let raw = try RawClient(port: h.gatewayPort)
                        try raw.send(
                            RawClient.post(
                                "/v1/chat/completions", key: h.clientKey,
                                body:
                                    #"{"model":"\#(model)","stream":\#(stream),"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                                headers: [("x-mock-stall-ms", "5000")]))
                        clients.append(raw)
                    }
                    try await Task.sleep(for: .milliseconds(300))
                    for raw in clients { raw.reset() }
                    let records = try await Self.eventually(h) { $0.count >= before + 2 }
                    let mine = records.dropFirst(before)
                    #expect(mine.count == 2, "\(model) stream=\(stream)")
                    #expect(mine.allSatisfy { $0.status == .clientDisconnected && $0.httpStatus == 499 })
                    #expect(mine.allSatisfy { $0.cost?.nanos ?? 0 == 0 })
                    // Both slots are free again: two requests at once go through.
                    async let a = h.post(
                        h.gatewayURL + "/v1/chat/completions",
                        body: #"{"model":"\#(model)","max_tokens":5,"messages":[{"role":"user","content":"a"}]}"#)
                    async let b = h.post(
                        h.gatewayURL + "/v1/chat/completions",
                        body: #"{"model":"\#(model)","max_tokens":5,"messages":[{"role":"user","content":"b"}]}"#)
                    let (ra, rb) = try await (a, b)
                    #expect(ra.status == 200 && rb.status == 200, "\(ra.text) \(rb.text)")
                }
                let usage = try await h.get(
                    h.gatewayURL + "/v1/usage", headers: [("authorization", "Bearer \(h.clientKey)")])
                #expect(usage.status == 200)
            }
        }

        @Test("a non-streamed client that leaves (FIN) before the head is client_disconnected, not completed")
        func finBeforeHead() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                try raw.send(
                    RawClient.post(
                        "/v1/chat/completions", key: h.clientKey,
                        body: #"{"model":"emu-gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                        headers: [("x-mock-stall-ms", "10000")]))
                try await Task.sleep(for: .milliseconds(300))
                raw.close()
                let records = try await Self.eventually(h) { !$0.isEmpty }
                #expect(records.count == 1)
                #expect(records.first?.status == .clientDisconnected)
                #expect(records.first?.httpStatus == 499)
                // Recorded at the FIN, not when the upstream's 10 s stall would have ended. The margin is
                // for a cold debug build, whose first request may still be loading a tokenizer when the
                // client leaves (the request is recorded once it reaches the forward stage).
                let took = records.first.map { $0.endedAt.timeIntervalSince($0.startedAt) } ?? .infinity
                #expect(took < 8, "recorded \(took) s after the start")
            }
        }

        @Test("half-open and idle connections are closed: header timeout, idle timeout")
        func idleConnections() async throws {
            let server = "  header_timeout_ms: 300\n  idle_timeout_ms: 700"
            try await LiveHarness.run(server: server) { h in
                // Headers that never finish.
                let slow = try RawClient(port: h.gatewayPort)
                try slow.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                let start = ContinuousClock.now
                // Closed long before the default timeouts (10 s, 30 s) would; the windows leave room for
                // the parallel suite, whose tests share this process's event loops.
                let (_, closedSlow) = await slow.readAll(timeout: .seconds(6))
                #expect(closedSlow)
                #expect(ContinuousClock.now - start < .seconds(5))
                // A connection that says nothing.
                let silent = try RawClient(port: h.gatewayPort)
                let (_, closedSilent) = await silent.readAll(timeout: .seconds(6))
                #expect(closedSilent)
                // Keep-alive after a response, then silence.
                let idle = try RawClient(port: h.gatewayPort)
                try idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let (bytes, closedIdle) = await idle.readAll(timeout: .seconds(6))
                #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
                #expect(closedIdle)
            }
        }

        @Test("on a kept-alive connection, the next request's unfinished head is cut by the header timeout")
        func headerTimeoutAfterARequest() async throws {
            // The idle timeout is far longer: a close within it is the header deadline's.
            try await LiveHarness.run(server: "  header_timeout_ms: 300\n  idle_timeout_ms: 20000") { h in
                let client = try RawClient(port: h.gatewayPort)
                for _ in 0..<3 {
                    try client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    let served = await client.read(until: "\"ok\"", timeout: .seconds(5))
                    #expect(served.hasPrefix("HTTP/1.1 200"), "\(served)")
                }
                try client.send("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                let start = ContinuousClock.now
                let (_, closed) = await client.readAll(timeout: .seconds(15))
                #expect(closed)
                #expect(ContinuousClock.now - start < .seconds(8))
            }
        }

        @Test("connections beyond max_connections wait in the backlog until one closes")
        func maxConnections() async throws {
            try await LiveHarness.run(server: "  max_connections: 2") { h in
                let first = try RawClient(port: h.gatewayPort)
                let second = try RawClient(port: h.gatewayPort)
                try await Task.sleep(for: .milliseconds(200))
                let third = try RawClient(port: h.gatewayPort)  // the kernel accepts it into the backlog
                try third.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let waiting = await third.read(until: "\"ok\"", timeout: .milliseconds(800))
                #expect(waiting.isEmpty, "\(waiting)")
                first.close()
                let served = await third.read(until: "\"ok\"", timeout: .seconds(5))
                #expect(served.hasPrefix("HTTP/1.1 200"), "\(served)")
                second.close()
            }
        }

        @Test("no output limit of its own: the upstream gets the reserved cap, and a hard budget holds")
        func outputCapForwarded() async throws {
            let plans = """
                default_plan: capped
                plans:
                  capped:
                    max_output_tokens: 300
                """
            try await LiveHarness.run(plans: plans) { h in
                let body = #"{"model":"emu-gpt","messages":[{"role":"user","content":"Write a lot."}]}"#
                let counted = try await h.post(h.gatewayURL + "/v1/chat/completions/count_tokens", body: body)
                let prompt = try #require(counted.json?["input_tokens"]?.intValue)
                // 2 and 8 CNY per million; the estimate is prompt + 300 output.
                let estimate = (Int64(prompt) * 2_000_000_000 + 300 * 8_000_000_000 + 500_000) / 1_000_000
                let limit = estimate * 5 / 2
                try h.store.setBudget(
                    h.tenant.id, limit: Money(nanos: limit, currency: "CNY").decimalString, currency: "CNY",
                    period: .month)
                try await Task.sleep(for: .milliseconds(600))
                let replies = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<12 {
                        group.addTask {
                            try await h.post(
                                h.gatewayURL + "/v1/chat/completions", body: body, headers: [("x-mock-words", "5000")]
                            ).status
                        }
                    }
                    var all: [Int] = []
                    for try await status in group { all.append(status) }
                    return all
                }
                #expect(replies.filter { $0 == 200 }.count == 2)
                let seen = h.emulator.requests.filter { $0.path == "/v1/chat/completions" }
                #expect(!seen.isEmpty)
                for request in seen {
                    #expect((try? JSONReader.parse(request.body))?["max_tokens"]?.intValue == 300)
                }
                let spent = try h.records().compactMap(\.budgetCharge?.nanos).reduce(0, +)
                #expect(spent > 0 && spent <= limit, "spent \(spent) of \(limit)")
            }
        }

        @Test("duplicate top-level keys are refused before routing or billing")
        func duplicateKeys() async throws {
            try await LiveHarness.run { h in
                let reply = try await h.post(
                    h.gatewayURL + "/v1/chat/completions",
                    body: #"{"model":"emu-gpt","model":"mock-gpt","max_tokens":5,"messages":[]}"#)
                #expect(reply.status == 400)
                #expect(reply.text.contains("duplicate member 'model'"))
                #expect(h.emulator.requests.isEmpty)
            }
        }

        @Test("upstream 401/403 become 502 provider_auth_failed; echoed credentials never reach the tenant")
        func upstreamCredentials() async throws {
            try await LiveHarness.run { h in
                let body = #"{"model":"emu-gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#
                for status in [401, 403] {
                    let reply = try await h.post(
                        h.gatewayURL + "/v1/chat/completions", body: body,
                        headers: [("x-mock-status", String(status)), ("x-mock-echo-key", "1")])
                    #expect(reply.status == 502)
                    #expect(reply.json?["error"]?["code"]?.stringValue == "provider_auth_failed")
                    #expect(!reply.text.contains(LiveHarness.upstreamSecret))
                    #expect(!reply.text.contains("invalid_api_key"))
                }
                for status in [400, 429, 500] {
                    let reply = try await h.post(
                        h.gatewayURL + "/v1/chat/completions", body: body,
                        headers: [("x-mock-status", String(status)), ("x-mock-echo-key", "1")])
                    #expect(!reply.text.contains(LiveHarness.upstreamSecret), "\(status): \(reply.text)")
                    #expect(reply.text.contains("[redacted]") || status == 500, "\(status): \(reply.text)")
                }
                let claude = try await h.post(
                    h.gatewayURL + "/v1/messages",
                    body: #"{"model":"emu-claude","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
                    headers: [("x-mock-status", "400"), ("x-mock-echo-key", "1")])
                #expect(claude.status == 400 && !claude.text.contains(LiveHarness.upstreamSecret))
                let records = try h.records()
                #expect(records.filter { $0.error == "provider_auth_failed" }.count == 2)
            }
        }

        @Test("a chunked body over the limit gets 413 and the connection closes after it")
        func oversizeBodies() async throws {
            try await LiveHarness.run { h in
                var request = HTTPClientRequest(url: h.gatewayURL + "/v1/chat/completions")
                request.method = .POST
                request.headers.add(name: "authorization", value: "Bearer \(h.clientKey)")
                let chunk = ByteBuffer(repeating: UInt8(ascii: "a"), count: 16 << 10)
                request.body = .stream(
                    AsyncStream<ByteBuffer> { c in
                        for _ in 0..<8 { c.yield(chunk) }
                        c.finish()
                    }, length: .unknown)
                let response = try await h.client.execute(request, timeout: .seconds(10))
                #expect(response.status.code == 413)
                #expect(response.headers.first(name: "connection")?.lowercased() == "close")

                let raw = try RawClient(port: h.gatewayPort)
                try raw.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(h.clientKey)\r\n"
                        + "Content-Length: 10000000\r\n\r\n" + String(repeating: "b", count: 1000))
                let (bytes, closed) = await raw.readAll(timeout: .seconds(5))
                #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 413"))
                #expect(closed)
            }
        }

        @Test("malformed requests and oversize headers get an API-format error with a request id")
        func malformedRequests() async throws {
            try await LiveHarness.run { h in
                let garbage = try RawClient(port: h.gatewayPort)
                try garbage.send("NOT HTTP AT ALL\r\n\r\n")
                let (bytes, closed) = await garbage.readAll(timeout: .seconds(3))
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 400"), "\(text)")
                #expect(text.lowercased().contains("x-request-id: req_"))
                #expect(text.contains(#""type":"invalid_request_error""#))
                #expect(closed)

                let big = try RawClient(port: h.gatewayPort)
                try big.send(
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "z", count: 70_000))\r\n\r\n")
                let (bigBytes, _) = await big.readAll(timeout: .seconds(3))
                let bigText = String(decoding: bigBytes, as: UTF8.self)
                #expect(bigText.hasPrefix("HTTP/1.1 431"), "\(bigText.prefix(200))")
                #expect(bigText.lowercased().contains("x-request-id: req_"))
            }
        }

        @Test("/v1/models lists only what the plan allows; a suspended tenant's request leaves a rejected record")
        func planAndSuspension() async throws {
            let plans = """
                default_plan: narrow
                plans:
                  narrow:
                    models: [emu-gpt]
                """
            try await LiveHarness.run(plans: plans) { h in
                let models = try await h.get(
                    h.gatewayURL + "/v1/models", headers: [("authorization", "Bearer \(h.clientKey)")])
                let ids = models.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
                #expect(ids == ["emu-gpt"])

                _ = try h.store.updateTenant(h.tenant.id, .init(status: "suspended"))
                try await Task.sleep(for: .milliseconds(600))
                let reply = try await h.post(
                    h.gatewayURL + "/v1/chat/completions",
                    body: #"{"model":"emu-gpt","max_tokens":5,"messages":[]}"#)
                #expect(reply.status == 403)
                let records = try await Self.eventually(h) { !$0.isEmpty }
                #expect(records.map(\.status) == [.rejected])
                #expect(records.first?.error == "tenant_suspended")
            }
        }

        @Test("headers the client names in Connection do not go upstream")
        func connectionNamedHeaders() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                try raw.send(
                    RawClient.post(
                        "/v1/chat/completions", key: h.clientKey,
                        body: #"{"model":"emu-gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
                        headers: [("Connection", "keep-alive, X-Hop-Secret"), ("X-Hop-Secret", "1"), ("X-Kept", "2")]))
                _ = await raw.read(until: "\"usage\"", timeout: .seconds(5))
                let seen = try #require(h.emulator.requests.last)
                #expect(seen.headers[HTTPField.Name("x-hop-secret")!] == nil)
                #expect(seen.headers[HTTPField.Name("x-kept")!] == "2")
            }
        }

        @Test("junk model names do not become rows of a tenant's usage")
        func junkModels() async throws {
            try await LiveHarness.run { h in
                for i in 0..<30 {
                    let reply = try await h.post(
                        h.gatewayURL + "/v1/chat/completions",
                        body: #"{"model":"junk-\#(i)-\#(String(repeating: "q", count: 200))","messages":[]}"#)
                    #expect(reply.status == 404)
                }
                let records = try await Self.eventually(h) { $0.count >= 30 }
                #expect(Set(records.map(\.model)) == [""])
                let usage = try await h.get(
                    h.gatewayURL + "/v1/usage", headers: [("authorization", "Bearer \(h.clientKey)")])
                #expect(!usage.text.contains("junk-"))
            }
        }

        @Test("a stream that falls silent mid-way is recorded upstream_timeout, not upstream_cut")
        func midStreamIdleTimeout() async throws {
            try await LiveHarness.run { h in
                let response = try await h.open(
                    h.gatewayURL + "/v1/chat/completions",
                    body:
                        #"{"model":"sleepy-gpt","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"x"}]}"#,
                    headers: [("x-mock-stall-after", "2"), ("x-mock-stall-ms", "6000")])
                #expect(response.status.code == 200)
                do {
                    for try await _ in response.body {}
                } catch {}
                let records = try await Self.eventually(h) { !$0.isEmpty }
                #expect(records.first?.status == .upstreamTimeout)
            }
        }

        @Test("an unknown key costs one store read, then none while remembered; a new key works at once")
        func unknownKeyCache() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-keys-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try GatewayStore(dataDirectory: dir)
            let tenant = try store.createTenant(name: "t")
            let directory = try await KeyDirectory(store: store)
            let start = ContinuousClock.now
            for _ in 0..<200 {
                let found = await directory.authenticate(secret: "sk-random-unknown")
                #expect(found == nil)
            }
            // One read per 2 s that the unknown hash is remembered (a loaded machine may take longer).
            let windows = Int((ContinuousClock.now - start) / .seconds(2)) + 1
            #expect(directory.storeLookups <= windows && directory.storeLookups < 20)
            let (_, secret) = try store.createKey(tenant: tenant.id, name: "fresh")
            let fresh = await directory.authenticate(secret: secret)
            #expect(fresh?.tenantID == tenant.id)
        }

        @Test("--threads is read in both spellings")
        func threadsOption() {
            #expect(EventLoopExecutor.threads(in: ["gateway", "serve", "--threads", "3"]) == 3)
            #expect(EventLoopExecutor.threads(in: ["gateway", "serve", "--threads=4"]) == 4)
            #expect(EventLoopExecutor.threads(in: ["gateway", "serve", "--threads=0"]) == nil)
            #expect(EventLoopExecutor.threads(in: ["gateway", "serve"]) == nil)
        }
    }
#endif
