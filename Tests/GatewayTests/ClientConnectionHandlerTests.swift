import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import Testing

@testable import Gateway

/// The client connection's handler hands requests to the connection's task one at a time and writes
/// responses itself: the framing must follow each request (its method and version, in pipelined order)
/// and each response (its status and length).
@Suite("Client connection handler")
struct ClientConnectionHandlerTests {
    final class Connection {
        let channel = EmbeddedChannel()
        let handler: ClientConnectionHandler

        init() throws {
            let limits = ConnectionLimits(headerTimeout: .seconds(10), idleTimeout: .seconds(30))
            handler = ClientConnectionHandler(watch: ConnectionWatch(channel: channel), limits: limits)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// Sends request bytes; returns the request handed to the connection's task, if one was.
        @discardableResult
        func send(_ raw: String) async throws -> Request? {
            try channel.writeInbound(ByteBuffer(string: raw))
            return await next()
        }

        /// The request handed over and not yet taken, taken as the connection's task takes it (the
        /// continuation is resumed at once).
        func next() async -> Request? {
            guard handler.handover.ready != nil else { return nil }
            return await withUnsafeContinuation { handler.nextRequest($0) }
        }

        /// Shutting down, as the server tells each connection.
        func quiesce() { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }

        /// Writes response parts as the connection's task does; returns the bytes that went out.
        func respond(_ parts: [HTTPResponsePart]) throws -> String {
            for part in parts {
                switch part {
                case .head(let head): try handler.sendHead(head)
                case .body(let body): _ = try handler.sendBody(body)
                case .end(let trailers): try handler.sendEnd(trailers)
                }
            }
            return written()
        }

        func written() -> String {
            var out = ""
            while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
                out += String(buffer: buffer)
            }
            return out
        }
    }

    static func response(_ code: Int, _ fields: HTTPFields = [:]) -> HTTPResponsePart {
        .head(HTTPResponse(status: .init(code: code), headerFields: fields))
    }

    static let body = HTTPResponsePart.body(ByteBuffer(string: "hello"))
    /// A 200 with an empty body, head and end.
    static let emptyOK = [response(200, [.contentLength: "0"]), .end(nil)]

    @Test("with a length the body goes as it is; without one it is chunked, and trailers end it")
    func framing() async throws {
        let c = try Connection()
        let post = try #require(try await c.send("POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"))
        #expect(post.uri.path == "/v1/x")
        #expect(String(buffer: try await post.body.collect(upTo: 100)) == "ab")
        let fixed = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(fixed == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        try await c.send("GET /s HTTP/1.1\r\n\r\n")
        let chunked = try c.respond([
            Self.response(200, [.contentType: "text/event-stream"]), Self.body, .body(ByteBuffer()),
            .end([.init("X-T")!: "1"]),
        ])
        #expect(
            chunked
                == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
        try await c.send("GET /n HTTP/1.1\r\n\r\n")
        #expect(try c.respond([Self.response(204), .end(nil)]) == "HTTP/1.1 204 No Content\r\n\r\n")
    }

    @Test("a response to HEAD has the head of a GET and no body; pipelined requests are answered in order")
    func headAndPipelining() async throws {
        let c = try Connection()
        let first = try await c.send("HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        #expect(first?.method == .head)
        // The second waits for the first's response.
        #expect(c.handler.handover.ready == nil)
        let head = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(head == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(await c.next()?.uri.path == "/b")
        let get = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(get == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    }

    @Test("a relayed chunk is framed as the response under way is")
    func relay() async throws {
        let c = try Connection()
        try await c.send("POST /s HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        // The head goes out with the first chunk (or when the relay starts without one).
        #expect(try c.respond([Self.response(200)]).isEmpty)
        c.handler.relayBody(ByteBuffer(string: "data: {}\n\n"), promise: nil)
        #expect(c.written() == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\ndata: {}\n\n\r\n")
        _ = try c.respond([.end(nil)])
        try await c.send("POST /j HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        _ = try c.respond([Self.response(200, [.contentLength: "2"])])
        c.handler.relayBody(ByteBuffer(string: "{}"), promise: nil)
        #expect(c.written() == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    }

    @Test("HTTP/1.0 without keep-alive: no chunked coding, the body ends with the connection")
    func http10() async throws {
        let c = try Connection()
        try await c.send("GET /h HTTP/1.0\r\n\r\n")
        let out = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(out == "HTTP/1.1 200 OK\r\n\r\nhello")
        // Nothing more is read from it.
        #expect(try await c.send("GET /h HTTP/1.1\r\n\r\n") == nil)
    }

    @Test(
        "a broken request after one being answered: that answer completes, then the broken one's, then the connection closes"
    )
    func brokenPipelinedRequest() async throws {
        let c = try Connection()
        #expect(try await c.send("GET /a HTTP/1.1\r\n\r\nBROKEN\r\n\r\n")?.uri.path == "/a")
        let out = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(
            out.hasPrefix("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 400 Bad Request\r\n"), "\(out)")
        #expect(out.contains(#""code":"malformed_request""#))
        #expect(try await c.send("GET /b HTTP/1.1\r\n\r\n") == nil)
    }

    @Test("shutting down: requests already read are answered, nothing more is read")
    func quiesce() async throws {
        let c = try Connection()
        #expect(try await c.send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")?.uri.path == "/a")
        c.quiesce()
        #expect(try await c.send("GET /c HTTP/1.1\r\n\r\n") == nil)
        let first = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        // Still open for the second answer; closed once it is out.
        #expect(c.channel.isActive)
        #expect(await c.next()?.uri.path == "/b")
        let second = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(first.hasSuffix("hello") && second.hasSuffix("hello"))
        #expect(!c.channel.isActive)
    }

    @Test("a 204 carries no framing fields; a relayed chunk with no response under way fails")
    func noBody() async throws {
        let c = try Connection()
        try await c.send("GET /n HTTP/1.1\r\n\r\n")
        let out = try c.respond([Self.response(204, [.contentLength: "0"]), .end(nil)])
        #expect(out == "HTTP/1.1 204 No Content\r\n\r\n")
        let promise = c.channel.eventLoop.makePromise(of: Void.self)
        c.handler.relayBody(ByteBuffer(string: "x"), promise: promise)
        #expect(throws: ChannelError.self) { try promise.futureResult.wait() }
    }

    @Test("Expect: 100-continue gets its interim answer at once, unless an earlier answer is under way")
    func expectContinue() async throws {
        let c = try Connection()
        try await c.send("POST /u HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n")
        #expect(c.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        try await c.send("ab")
        _ = try c.respond([Self.response(200, [.contentLength: "0"])])
        // The next request arrives while that answer is still open: no interim answer inside it.
        try await c.send("POST /v HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        #expect(c.written().isEmpty)
        // Nor for a request without a body, or from HTTP/1.0.
        _ = try c.respond([.end(nil)])
        try await c.send("ab")
        _ = try c.respond(Self.emptyOK)
        try await c.send("GET /w HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
        #expect(c.written().isEmpty)
    }

    @Test("a request that cannot be read gets a JSON 400 with a request id, and nothing after it is read")
    func malformed() async throws {
        let c = try Connection()
        #expect(try await c.send("GET / HTTP/1.1\r\nBad Header\r\n\r\n") == nil)
        let out = c.written()
        #expect(out.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(out)")
        #expect(out.lowercased().contains("x-request-id: req_"))
        #expect(out.contains(#""code":"malformed_request""#))
        #expect(try await c.send("GET / HTTP/1.1\r\n\r\n") == nil)
    }

    /// Counts the reads that reach the socket: they pass the connection's handler only when it reads.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    @Test("a body still arriving goes to the task as it comes; reading pauses while too much of it waits")
    func streamedBody() async throws {
        let c = try Connection()
        let counter = ReadCounter()
        try c.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        let size = ClientRequestBody.pauseAbove + 100_000
        let request = try #require(
            try await c.send("POST /big HTTP/1.1\r\nContent-Length: \(size + 6)\r\n\r\nabc"))
        c.channel.read()
        #expect(counter.reads == 1)
        // More than the limit arrives and nothing takes it: reads stop.
        try c.channel.writeInbound(ByteBuffer(repeating: UInt8(ascii: "x"), count: size))
        c.channel.read()
        #expect(counter.reads == 1)
        // Taking it resumes them (through the loop).
        var iterator = request.body.makeAsyncIterator()
        #expect(String(buffer: try #require(try await iterator.next())) == "abc")
        #expect(try await iterator.next()?.readableBytes == size)
        c.channel.embeddedEventLoop.run()
        #expect(counter.reads == 2)
        // The end.
        try c.channel.writeInbound(ByteBuffer(string: "END"))
        #expect(String(buffer: try #require(try await iterator.next())) == "END")
        #expect(try await iterator.next() == nil)
    }

    @Test("a body that breaks off is an error to its reader, not an end")
    func brokenBody() async throws {
        let c = try Connection()
        let request = try #require(try await c.send("POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"))
        c.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        await #expect(throws: (any Error).self) { _ = try await request.body.collect(upTo: 100) }
        // The client is gone and nothing answers: the connection is closed by the handler once answered.
        _ = try c.respond([Self.response(400, [.contentLength: "0"]), .end(nil)])
        #expect(!c.channel.isActive)
    }

    @Test("requests pipelined while one is answered are kept, and reading pauses past the hold limit")
    func holdLimit() async throws {
        let c = try Connection()
        let counter = ReadCounter()
        try c.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        #expect(try await c.send("GET /a HTTP/1.1\r\n\r\n")?.uri.path == "/a")
        let filler = String(repeating: "GET /p HTTP/1.1\r\n\r\n", count: ClientConnectionHandler.holdLimit / 19 + 1)
        try c.channel.writeInbound(ByteBuffer(string: filler))
        c.channel.read()
        #expect(counter.reads == 0)
        _ = try c.respond(Self.emptyOK)
        // The answer ended: the first kept request is handed over and reading resumes.
        #expect(counter.reads == 1)
        #expect(await c.next()?.uri.path == "/p")
    }

    @Test("answered before its body is in: the response closes the connection and nothing after it is read")
    func earlyAnswer() async throws {
        let c = try Connection()
        let request = try #require(try await c.send("POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"))
        let out = try c.respond([Self.response(401, [.contentLength: "0"]), .end(nil)])
        #expect(out == "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await #expect(throws: (any Error).self) { _ = try await request.body.collect(upTo: 100) }
        // The rest of the body and a request behind it: neither is taken as a request.
        try c.channel.writeInbound(ByteBuffer(string: "defghijGET /x HTTP/1.1\r\n\r\n"))
        #expect(await c.next() == nil)
        #expect(c.written().isEmpty)
    }

    @Test(
        "shutting down while a body arrives: it is read to its end, what was read is answered, then the connection closes",
        .timeLimit(.minutes(1)))
    func quiesceDuringBody() async throws {
        let c = try Connection()
        let request = try #require(try await c.send("POST /u HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc"))
        c.quiesce()
        try c.channel.writeInbound(ByteBuffer(string: "defGET /x HTTP/1.1\r\n\r\n"))
        #expect(String(buffer: try await request.body.collect(upTo: 100)) == "abcdef")
        _ = try c.respond(Self.emptyOK)
        // A request read with the body's end is answered too; nothing read after.
        #expect(await c.next()?.uri.path == "/x")
        try c.channel.writeInbound(ByteBuffer(string: "GET /y HTTP/1.1\r\n\r\n"))
        _ = try c.respond(Self.emptyOK)
        #expect(await c.next() == nil)
        #expect(!c.channel.isActive)
    }

    @Test("the end of a response the client does not take: the task waits until it takes it")
    func endWaitsForWritability() async throws {
        let c = try Connection()
        try await c.send("GET /a HTTP/1.1\r\n\r\n")
        c.channel.isWritable = false
        c.channel.pipeline.fireChannelWritabilityChanged()
        try c.handler.sendHead(HTTPResponse(status: .notFound, headerFields: [.contentLength: "0"]))
        #expect(try c.handler.sendEnd(nil) == false)
        nonisolated(unsafe) let handler = c.handler
        let (registered, signal) = AsyncStream.makeStream(of: Void.self)
        let waiting = Task {
            try await withUnsafeThrowingContinuation { continuation in
                handler.whenWritable(continuation)
                signal.yield()
            }
        }
        for await _ in registered { break }
        c.channel.isWritable = true
        c.channel.pipeline.fireChannelWritabilityChanged()
        try await waiting.value
    }

    @Test("an early answer to a body that paused reading: reading resumes while the connection lingers")
    func earlyAnswerResumesReading() async throws {
        let c = try Connection()
        let counter = ReadCounter()
        try c.channel.pipeline.syncOperations.addHandler(counter, position: .first)
        let size = ClientRequestBody.pauseAbove + 1000
        try await c.send("POST /big HTTP/1.1\r\nContent-Length: \(size * 2)\r\n\r\n")
        try c.channel.writeInbound(ByteBuffer(repeating: UInt8(ascii: "x"), count: size))
        c.channel.read()
        #expect(counter.reads == 0)
        let out = try c.respond([Self.response(413, [.contentLength: "0"]), .end(nil)])
        #expect(out.contains("Connection: close"))
        // The read asked for while paused goes out: what the client still sends is drained.
        #expect(counter.reads == 1)
    }

    @Test(
        "shutting down: a request read with the last one's end, its body cut across reads, is read to its end",
        .timeLimit(.minutes(1)))
    func quiesceHeldRequestBody() async throws {
        let c = try Connection()
        let first = try #require(try await c.send("POST /a HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"))
        c.quiesce()
        try c.channel.writeInbound(ByteBuffer(string: "cdPOST /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nxyz"))
        #expect(String(buffer: try await first.body.collect(upTo: 100)) == "abcd")
        _ = try c.respond(Self.emptyOK)
        let second = try #require(await c.next())
        try c.channel.writeInbound(ByteBuffer(string: "uvw"))
        #expect(String(buffer: try await second.body.collect(upTo: 100)) == "xyzuvw")
        _ = try c.respond(Self.emptyOK)
        #expect(!c.channel.isActive)
    }
}
