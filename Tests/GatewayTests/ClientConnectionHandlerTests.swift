import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import Testing

@testable import Gateway

/// The client connection's handler writes responses itself: the framing must follow each request (its
/// method and version, in pipelined order) and each response (its status and length).
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

        /// Sends request bytes; returns the request parts the handler passed on.
        func send(_ raw: String) throws -> [HTTPRequestPart] {
            try channel.writeInbound(ByteBuffer(string: raw))
            var parts: [HTTPRequestPart] = []
            while let part = try channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
            return parts
        }

        /// Writes response parts; returns the bytes that went out.
        func respond(_ parts: [HTTPResponsePart]) throws -> String {
            for part in parts { channel.write(part, promise: nil) }
            channel.flush()
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

    @Test("with a length the body goes as it is; without one it is chunked, and trailers end it")
    func framing() throws {
        let c = try Connection()
        #expect(try c.send("POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab").count == 3)
        let fixed = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(fixed == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        _ = try c.send("GET /s HTTP/1.1\r\n\r\n")
        let chunked = try c.respond([
            Self.response(200, [.contentType: "text/event-stream"]), Self.body, .body(ByteBuffer()),
            .end([.init("X-T")!: "1"]),
        ])
        #expect(
            chunked
                == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                + "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
        _ = try c.send("GET /n HTTP/1.1\r\n\r\n")
        #expect(try c.respond([Self.response(204), .end(nil)]) == "HTTP/1.1 204 No Content\r\n\r\n")
    }

    @Test("a response to HEAD has the head of a GET and no body; pipelined requests are answered in order")
    func headAndPipelining() throws {
        let c = try Connection()
        let parts = try c.send("HEAD /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        #expect(parts.count == 4)
        let head = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(head == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        let get = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(get == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    }

    @Test("a relayed chunk is framed as the response under way is")
    func relay() throws {
        let c = try Connection()
        _ = try c.send("POST /s HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        _ = try c.respond([Self.response(200)])
        c.handler.relayBody(ByteBuffer(string: "data: {}\n\n"), promise: nil)
        #expect(c.written() == "a\r\ndata: {}\n\n\r\n")
        _ = try c.respond([.end(nil)])
        _ = try c.send("POST /j HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        _ = try c.respond([Self.response(200, [.contentLength: "2"])])
        c.handler.relayBody(ByteBuffer(string: "{}"), promise: nil)
        #expect(c.written() == "{}")
    }

    @Test("HTTP/1.0 without keep-alive: no chunked coding, the body ends with the connection")
    func http10() throws {
        let c = try Connection()
        _ = try c.send("GET /h HTTP/1.0\r\n\r\n")
        let out = try c.respond([Self.response(200), Self.body, .end(nil)])
        #expect(out == "HTTP/1.1 200 OK\r\n\r\nhello")
        // Nothing more is read from it.
        #expect(try c.send("GET /h HTTP/1.1\r\n\r\n").isEmpty)
    }

    @Test("a broken request after one being answered: that answer completes, then the connection closes")
    func brokenPipelinedRequest() throws {
        let c = try Connection()
        #expect(try c.send("GET /a HTTP/1.1\r\n\r\nBROKEN\r\n\r\n").count == 2)
        let out = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(out == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        #expect(try c.send("GET /b HTTP/1.1\r\n\r\n").isEmpty)
    }

    @Test("shutting down: requests already read are answered, nothing more is read")
    func quiesce() throws {
        let c = try Connection()
        #expect(try c.send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n").count == 4)
        c.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try c.send("GET /c HTTP/1.1\r\n\r\n").isEmpty)
        let first = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        // Still open for the second answer; closed once it is out.
        #expect(c.channel.isActive)
        let second = try c.respond([Self.response(200, [.contentLength: "5"]), Self.body, .end(nil)])
        #expect(first.hasSuffix("hello") && second.hasSuffix("hello"))
        #expect(!c.channel.isActive)
    }

    @Test("a 204 carries no framing fields; a relayed chunk with no response under way fails")
    func noBody() throws {
        let c = try Connection()
        _ = try c.send("GET /n HTTP/1.1\r\n\r\n")
        let out = try c.respond([Self.response(204, [.contentLength: "0"]), .end(nil)])
        #expect(out == "HTTP/1.1 204 No Content\r\n\r\n")
        let promise = c.channel.eventLoop.makePromise(of: Void.self)
        c.handler.relayBody(ByteBuffer(string: "x"), promise: promise)
        #expect(throws: ChannelError.self) { try promise.futureResult.wait() }
    }

    @Test("Expect: 100-continue gets its interim answer at once, unless an earlier answer is under way")
    func expectContinue() throws {
        let c = try Connection()
        _ = try c.send("POST /u HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n")
        #expect(c.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        _ = try c.send("ab")
        _ = try c.respond([Self.response(200, [.contentLength: "0"])])
        // The next request arrives while that answer is still open: no interim answer inside it.
        _ = try c.send("POST /v HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        #expect(c.written().isEmpty)
        // Nor for a request without a body, or from HTTP/1.0.
        _ = try c.respond([.end(nil)])
        _ = try c.send("ab")
        _ = try c.respond([Self.response(200, [.contentLength: "0"]), .end(nil)])
        _ = try c.send("GET /w HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
        #expect(c.written().isEmpty)
    }

    @Test("a request that cannot be read gets a JSON 400 with a request id, and nothing after it is read")
    func malformed() throws {
        let c = try Connection()
        #expect(try c.send("GET / HTTP/1.1\r\nBad Header\r\n\r\n").isEmpty)
        let out = c.written()
        #expect(out.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(out)")
        #expect(out.lowercased().contains("x-request-id: req_"))
        #expect(out.contains(#""code":"malformed_request""#))
        #expect(try c.send("GET / HTTP/1.1\r\n\r\n").isEmpty)
    }
}
