#if os(Linux)
    import Foundation
    import GatewayMock
    import Metering
    import Testing

    /// The gateway's own HTTP/1.1 client side over live sockets: what an HTTP library does not send
    /// (pipelining, HTTP/1.0, chunked uploads written by hand, a smuggling attempt) and what must come back.
    @Suite("Client connections over live sockets")
    struct ClientConnectionLiveTests {
        static let chat = #"{"model":"emu-gpt","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#
        static let stream =
            #"{"model":"emu-gpt","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}"#

        @Test("pipelined requests in one write are answered in order on the same connection")
        func pipelined() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                let request = RawClient.post("/v1/chat/completions", key: h.clientKey, body: Self.chat)
                let last = RawClient.post(
                    "/v1/chat/completions", key: h.clientKey, body: Self.chat, headers: [("Connection", "close")])
                try raw.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + request + last)
                let (bytes, closed) = await raw.readAll(timeout: .seconds(10))
                let all = String(decoding: bytes, as: UTF8.self)
                #expect(closed)
                #expect(all.hasPrefix("HTTP/1.1 200"), "\(all.prefix(200))")
                #expect(all.components(separatedBy: "HTTP/1.1 200 ").count == 4, "\(all)")
                // Every answer is dated (IMF-fixdate).
                let dates = all.components(separatedBy: "\r\n").filter { $0.lowercased().hasPrefix("date: ") }
                #expect(dates.count == 3, "\(all)")
                #expect(
                    dates.allSatisfy { $0.hasSuffix(" GMT") && $0.count == "Date: Tue, 08 Dec 2026 00:39:45 GMT".count }
                )
                #expect(try h.records().count == 2)
            }
        }

        @Test("HTTP/1.0: a stream comes without chunked coding and ends with the connection")
        func http10() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                let request = RawClient.post("/v1/chat/completions", key: h.clientKey, body: Self.stream)
                try raw.send(request.replacingOccurrences(of: "HTTP/1.1", with: "HTTP/1.0"))
                let (bytes, closed) = await raw.readAll(timeout: .seconds(10))
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 200"), "\(text.prefix(200))")
                #expect(!text.lowercased().contains("transfer-encoding"))
                #expect(text.hasSuffix("data: [DONE]\n\n"), "\(text.suffix(80))")
                #expect(closed)
                let records = try h.records()
                #expect(records.count == 1 && records.first?.status == .completed)
            }
        }

        @Test("a chunked upload written by hand is read whole; Connection: close ends the connection after it")
        func chunkedUpload() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                let body = Array(Self.chat.utf8)
                var text = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(h.clientKey)\r\n"
                text += "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: Close\r\n\r\n"
                for piece in stride(from: 0, to: body.count, by: 7) {
                    let part = body[piece..<min(piece + 7, body.count)]
                    text +=
                        String(part.count, radix: 16) + ";ext=1\r\n" + String(decoding: part, as: UTF8.self) + "\r\n"
                }
                try raw.send(text + "0\r\nX-Trailer: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                let (bytes, closed) = await raw.readAll(timeout: .seconds(10))
                let answer = String(decoding: bytes, as: UTF8.self)
                #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(300))")
                #expect(answer.contains("\"usage\""))
                // The request after the one that said close is not answered.
                #expect(answer.components(separatedBy: "HTTP/1.1 2").count == 2)
                #expect(closed)
            }
        }

        @Test("a client that reads none of a long stream loses the connection after the idle timeout")
        func clientThatStopsReading() async throws {
            try await LiveHarness.run(server: "  idle_timeout_ms: 1000") { h in
                // A small receive window: the gateway's buffers fill long before the stream ends.
                let raw = try RawClient(port: h.gatewayPort, receiveBuffer: 4096)
                let long = #"{"model":"emu-gpt","stream":true,"messages":[{"role":"user","content":"x"}]}"#
                try raw.send(
                    RawClient.post(
                        "/v1/chat/completions", key: h.clientKey, body: long,
                        headers: [("x-mock-chunks", "100000"), ("x-mock-words", "200000")]))
                let records = try await HardeningLiveTests.eventually(h, timeout: .seconds(20)) { !$0.isEmpty }
                #expect(records.first?.status == .clientDisconnected, "\(records.map(\.status))")
                // What the kernel still held comes through, then the end: the connection is gone.
                let (_, closed) = await raw.readAll(timeout: .seconds(10))
                #expect(closed)
            }
        }

        @Test("a client that waits for 100 Continue gets it, then its answer")
        func expectContinue() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                let request = RawClient.post(
                    "/v1/chat/completions", key: h.clientKey, body: Self.chat, headers: [("Expect", "100-continue")])
                let headEnd = request.range(of: "\r\n\r\n")!.upperBound
                try raw.send(String(request[..<headEnd]))
                let interim = await raw.read(until: "\r\n\r\n", timeout: .seconds(5))
                #expect(interim == "HTTP/1.1 100 Continue\r\n\r\n")
                try raw.send(String(request[headEnd...]))
                let answer = await raw.read(until: "\"usage\"", timeout: .seconds(10))
                #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
            }
        }

        @Test("answered before its body is in: the answer closes the connection and nothing sent after it is taken")
        func earlyAnswer() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                let request = RawClient.post("/v1/chat/completions", key: "sk-gw-not-a-real-key", body: Self.chat)
                let bodyStart = request.range(of: "\r\n\r\n")!.upperBound
                // The head and part of the body: the key is refused before the body is read.
                try raw.send(String(request[..<request.index(bodyStart, offsetBy: 5)]))
                let answer = await raw.read(until: "}}", timeout: .seconds(5))
                #expect(answer.hasPrefix("HTTP/1.1 401"), "\(answer.prefix(200))")
                #expect(answer.lowercased().contains("\r\nconnection: close\r\n"), "\(answer)")
                // The rest of the body, then a request that must not be taken from it.
                try? raw.send(
                    String(request[request.index(bodyStart, offsetBy: 5)...])
                        + RawClient.post("/v1/chat/completions", key: h.clientKey, body: Self.chat))
                let (rest, closed) = await raw.readAll(timeout: .seconds(5))
                #expect(!String(decoding: rest, as: UTF8.self).contains("HTTP/1.1"))
                #expect(closed)
                #expect(h.emulator.requests.isEmpty)
            }
        }

        @Test("Content-Length with Transfer-Encoding is refused before anything is billed or forwarded")
        func smuggling() async throws {
            try await LiveHarness.run { h in
                let raw = try RawClient(port: h.gatewayPort)
                var text = RawClient.post("/v1/chat/completions", key: h.clientKey, body: "")
                text = text.replacingOccurrences(of: "\r\n\r\n", with: "\r\nTransfer-Encoding: chunked\r\n\r\n")
                try raw.send(text + "0\r\n\r\nPOST /v1/chat/completions HTTP/1.1\r\n\r\n")
                let (bytes, closed) = await raw.readAll(timeout: .seconds(5))
                let answer = String(decoding: bytes, as: UTF8.self)
                #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(200))")
                #expect(answer.contains(#""code":"malformed_request""#))
                #expect(answer.components(separatedBy: "HTTP/1.1 4").count == 2)
                #expect(!answer.contains("HTTP/1.1 2"))
                #expect(closed)
                #expect(h.emulator.requests.isEmpty)
                #expect(try h.records().isEmpty)
            }
        }
    }
#endif
