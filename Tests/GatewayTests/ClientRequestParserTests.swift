import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import TestSupport
import Testing

@testable import Gateway

/// Client connections are parsed by the gateway's own request parser. Every well-formed request must
/// come out as NIO's decoder and HTTP types converter made it, however the bytes are split and however
/// many requests share a read; what is ambiguous or malformed is an error.
@Suite("Client request parser")
struct ClientRequestParserTests {
    struct Parsed: Equatable, CustomStringConvertible {
        var method = ""
        var path = ""
        var authority: String?
        var fields: [String] = []
        var body: [UInt8] = []
        var ended = false

        var description: String { "\(method) \(path) \(authority ?? "-") \(fields) \(body.count) bytes ended \(ended)" }
    }

    /// Feeds `bytes` in pieces cut at `cuts`; every request found, in order.
    static func parse(_ bytes: [UInt8], cuts: [Int] = []) throws(HTTPParserError) -> [Parsed] {
        var parser = ClientRequestParser()
        var out: [Parsed] = []
        for var buffer in pieces(of: bytes, cutAt: cuts) {
            while let event = try parser.next(&buffer) {
                switch event {
                case .head(let head): out.append(Self.parsed(head.request))
                case .body(let part): out[out.count - 1].body += part.readableBytesView
                case .end: out[out.count - 1].ended = true
                }
            }
        }
        return out
    }

    static func parsed(_ request: HTTPRequest) -> Parsed {
        Parsed(
            method: request.method.rawValue, path: request.path ?? "", authority: request.authority,
            fields: request.headerFields.map { "\($0.name.canonicalName): \($0.value)" })
    }

    /// What NIO's server decoder and Hummingbird's converter made of the same bytes.
    static func nioParse(_ bytes: [UInt8]) throws -> [Parsed] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false, withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        var out: [Parsed] = []
        while let part = try channel.readInbound(as: HTTPRequestPart.self) {
            switch part {
            case .head(let request): out.append(Self.parsed(request))
            case .body(let body): out[out.count - 1].body += body.readableBytesView
            case .end: out[out.count - 1].ended = true
            }
        }
        _ = try? channel.finish()
        return out
    }

    /// A well-formed request with random method, target, fields and framing.
    static func randomRequest(_ rng: inout some RandomNumberGenerator) -> [UInt8] {
        let method = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"].randomElement(using: &rng)!
        let target = [
            "/v1/chat/completions", "/v1/messages?beta=true", "/", "/a%20b/c?x=1&y=%C3%A9",
            "http://example.com/v1/models?q=1", "http://example.com", "https://h:8443/p",
        ].randomElement(using: &rng)!
        var out = "\(method) \(target) HTTP/1.1\r\n"
        if Int.random(in: 0..<8, using: &rng) != 0 { out += "Host: gw.example:8080\r\n" }
        for i in 0..<Int.random(in: 0..<6, using: &rng) {
            let value = ["application/json", "Bearer sk-x", "a,b, c", "é-obs-text", "", " padded"].randomElement(
                using: &rng)!
            out += "X-H\(i):\(value)\r\n"
        }
        let body = (0..<Int.random(in: 0..<400, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        switch Int.random(in: 0..<3, using: &rng) {
        case 0 where body.isEmpty:
            return Array((out + "\r\n").utf8)
        case 0, 1:
            return Array((out + "Content-Length: \(body.count)\r\n\r\n").utf8) + body
        default:
            var bytes = Array((out + "Transfer-Encoding: chunked\r\n\r\n").utf8)
            var rest = body[...]
            while !rest.isEmpty {
                let n = min(rest.count, Int.random(in: 1...150, using: &rng))
                bytes += Array("\(String(n, radix: 16))\(Bool.random(using: &rng) ? ";e=1" : "")\r\n".utf8)
                bytes += rest.prefix(n) + Array("\r\n".utf8)
                rest = rest.dropFirst(n)
            }
            return bytes + Array((Bool.random(using: &rng) ? "0\r\n\r\n" : "0\r\nX-T: 1\r\n\r\n").utf8)
        }
    }

    @Test("random well-formed requests, pipelined and cut anywhere: what NIO's decoder and converter made")
    func agreesWithNIO() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(seed: seed)
        for round in 0..<300 {
            let bytes = (0..<Int.random(in: 1...3, using: &rng)).flatMap { _ in Self.randomRequest(&rng) }
            let expected = try Self.nioParse(bytes)
            let cuts = (0..<Int.random(in: 0..<8, using: &rng)).map { _ in Int.random(in: 0...bytes.count, using: &rng)
            }
            let got = try Self.parse(bytes, cuts: cuts)
            #expect(got == expected, "seed \(seed), round \(round)")
            if got != expected { return }
        }
    }

    @Test("a request cut at any byte, or two, parses as when whole")
    func everyCut() throws {
        let body = #"{"model":"m","messages":[{"role":"user","content":"x"}]}"#
        let raw =
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer k\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n\(body)GET /healthz HTTP/1.1\r\n\r\n"
        let bytes = Array(raw.utf8)
        let whole = try Self.parse(bytes)
        #expect(whole.count == 2 && whole[0].body.count == body.utf8.count && whole.allSatisfy(\.ended))
        for first in 1..<bytes.count {
            #expect(try Self.parse(bytes, cuts: [first]) == whole, "cut at \(first)")
            let second = (first * 7919) % bytes.count
            #expect(try Self.parse(bytes, cuts: [first, second]) == whole, "cuts at \(first), \(second)")
        }
    }

    @Test("a header line at the limit is refused however the reads fall; one byte shorter is read")
    func lineLimit() throws {
        // The limit counts the line's CR: "X: " and the value make a line of `length` bytes before it.
        for (length, fits) in [(ClientRequestParser.maxLineBytes - 1, true), (ClientRequestParser.maxLineBytes, false)]
        {
            let raw = "GET / HTTP/1.1\r\nX: \(String(repeating: "v", count: length - 3))\r\n\r\n"
            let bytes = Array(raw.utf8)
            for cuts in [[], [20], [bytes.count - 3]] {
                if fits {
                    #expect(try Self.parse(bytes, cuts: cuts).count == 1)
                } else {
                    #expect(throws: HTTPParserError.headerOverflow) { _ = try Self.parse(bytes, cuts: cuts) }
                }
            }
        }
    }

    @Test(
        "ambiguous or malformed requests are errors, each for its reason",
        arguments: [
            ("NOT HTTP AT ALL\r\n\r\n", HTTPParserError.invalidVersion),
            ("G(T / HTTP/1.1\r\n\r\n", .invalidMethod),
            ("GET / HTTP/2.0\r\n\r\n", .invalidVersion),
            ("GET /a b HTTP/1.1\r\n\r\n", .invalidVersion),
            ("GET /\u{7F} HTTP/1.1\r\n\r\n", .invalidURL),
            ("GET / HTTP/1.1\nHost: x\r\n\r\n", .lfExpected),
            ("GET / HTTP/1.1\r\nHost: x\n\r\n", .lfExpected),
            ("GET / HTTP/1.1\r\nHo st: x\r\n\r\n", .invalidHeaderToken),
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", .invalidHeaderToken),
            ("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", .invalidHeaderToken),
            ("GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n", .invalidHeaderToken),
            ("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", .lfExpected),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", .invalidContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", .unexpectedContentLength),
            ("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding:\r\n\r\n", .unexpectedContentLength),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", .invalidTransferEncoding),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .invalidTransferEncoding),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                .invalidTransferEncoding
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .invalidTransferEncoding),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", .invalidChunkSize),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n", .invalidChunkSize),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n", .invalidChunkSize),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", .invalidChunkSize),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", .invalidChunkSize),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n", .invalidHeaderToken),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n", .invalidHeaderToken),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n", .invalidHeaderToken),
            ("GET / HTTP/1.1\r\nX: \(String(repeating: "z", count: 17_000))\r\n\r\n", .headerOverflow),
            ("GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 201) + "\r\n", .headerOverflow),
            (
                "GET / HTTP/1.1\r\n" + String(repeating: "X: \(String(repeating: "y", count: 9000))\r\n", count: 8),
                .headerOverflow
            ),
        ])
    func malformed(_ raw: String, _ expected: HTTPParserError) {
        let bytes = Array(raw.utf8)
        // Whole, byte by byte, and halved: the same error.
        for cuts in [[], Array(0..<bytes.count), [bytes.count / 2]] {
            #expect(throws: expected, "\(raw.prefix(60))") { _ = try Self.parse(bytes, cuts: cuts) }
        }
    }

    @Test("keep-alive follows the version and Connection; empty lines before a request are skipped")
    func keepAlive() throws {
        func head(_ raw: String) throws -> ClientRequestParser.Head? {
            var parser = ClientRequestParser()
            var buffer = ByteBuffer(string: raw)
            while let event = try parser.next(&buffer) { if case .head(let head) = event { return head } }
            return nil
        }
        #expect(try head("GET / HTTP/1.1\r\n\r\n")?.keepAlive == true)
        #expect(try head("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n")?.keepAlive == false)
        #expect(try head("GET / HTTP/1.0\r\n\r\n")?.keepAlive == false)
        #expect(try head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?.keepAlive == true)
        #expect(try head("GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n")?.keepAlive == false)
        #expect(try head("GET foo?u=http://x/y HTTP/1.1\r\n\r\n")?.request.path == "foo?u=http://x/y")
        #expect(try head("\r\n\r\nGET /x HTTP/1.1\r\n\r\n")?.request.path == "/x")
        #expect(try head("GET http://h/p?q HTTP/1.1\r\n\r\n")?.request.path == "/p?q")
        #expect(try head("GET http://h?q HTTP/1.1\r\n\r\n")?.request.path == "/?q")
        // A second Host stays a field; the first is the authority.
        let twoHosts = try head("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(twoHosts?.request.authority == "a")
        #expect(twoHosts?.request.headerFields[values: HTTPField.Name("Host")!] == ["b"])
    }
}
