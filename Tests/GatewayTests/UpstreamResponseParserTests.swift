import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import TestSupport
import Testing

@testable import Gateway

/// The upstream connection frames responses itself. For every well-formed response it must agree with
/// NIO's decoder (llhttp), however the bytes are split; what is ambiguous or malformed is an error.
@Suite("Upstream response parser")
struct UpstreamResponseParserTests {
    struct Parsed: Equatable {
        var status: Int
        var version: HTTPVersion
        var headers: [String]
        var body: [UInt8]
        var ended: Bool
        var keepAlive: Bool
        /// Bytes left unread after the end (NIO's decoder reports none; compared only here).
        var leftover = 0
    }

    /// Feeds `bytes` in pieces cut at `cuts`, then closes the input if `close`.
    static func parse(_ bytes: [UInt8], cuts: [Int] = [], close: Bool = false) throws -> Parsed {
        var parser = UpstreamResponseParser()
        var parsed = Parsed(status: 0, version: .http1_1, headers: [], body: [], ended: false, keepAlive: false)
        for var buffer in pieces(of: bytes, cutAt: cuts) {
            while let event = try parser.next(&buffer) {
                switch event {
                case .head(let head):
                    parsed.status = Int(head.status.code)
                    parsed.version = head.version
                    parsed.headers = head.headers.map { "\($0.name): \($0.value)" }
                case .body(let part): parsed.body += part.readableBytesView
                case .end: parsed.ended = true
                }
            }
            if parser.isDone { parsed.leftover += buffer.readableBytes }
        }
        if close, parser.inputClosed() { parsed.ended = true }
        parsed.keepAlive = parser.keepAlive
        return parsed
    }

    /// What NIO's client decoder makes of the same bytes, after a POST went out.
    static func nioParse(_ bytes: [UInt8], close: Bool) throws -> Parsed {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHTTPClientHandlers()
        try channel.writeOutbound(
            HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")))
        try channel.writeOutbound(HTTPClientRequestPart.end(nil))
        var parsed = Parsed(status: 0, version: .http1_1, headers: [], body: [], ended: false, keepAlive: false)
        try channel.writeInbound(ByteBuffer(bytes: bytes))
        if close { _ = try? channel.finish() }
        while let part = try channel.readInbound(as: HTTPClientResponsePart.self) {
            switch part {
            case .head(let head):
                parsed.status = Int(head.status.code)
                parsed.version = head.version
                // llhttp keeps a trailing tab in a value; RFC 9112 excludes it (OWS), as the parser does.
                parsed.headers = head.headers.map {
                    "\($0.name): \($0.value.trimmingCharacters(in: .whitespaces))"
                }
                parsed.keepAlive = head.isKeepAlive
            case .body(let part): parsed.body += part.readableBytesView
            case .end: parsed.ended = true
            }
        }
        if !close { _ = try? channel.finish() }
        return parsed
    }

    /// A well-formed response with random version, status, headers, framing and chunking.
    static func randomResponse(_ rng: inout some RandomNumberGenerator) -> (bytes: [UInt8], closeDelimited: Bool) {
        var out = ""
        if Int.random(in: 0..<4, using: &rng) == 0 { out += "HTTP/1.1 100 Continue\r\n\r\n" }
        if Int.random(in: 0..<6, using: &rng) == 0 { out += "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" }
        let http10 = Int.random(in: 0..<5, using: &rng) == 0
        let status = [200, 201, 204, 304, 400, 404, 429, 500, 503].randomElement(using: &rng)!
        out +=
            "HTTP/1.\(http10 ? 0 : 1) \(status) \(["OK", "Whatever", "", "Too  Many"].randomElement(using: &rng)!)\r\n"
        for i in 0..<Int.random(in: 0..<6, using: &rng) {
            let value = ["application/json", " padded\t", "a,b, c", "é-obs-text", ""].randomElement(using: &rng)!
            out += "X-H\(i):\(value)\r\n"
        }
        if http10 && Bool.random(using: &rng) { out += "Connection: keep-alive\r\n" }
        let body = (0..<Int.random(in: 0..<600, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        if status == 204 || status == 304 {
            return (Array((out + "\r\n").utf8), false)
        }
        var bytes: [UInt8]
        let framing = Int.random(in: 0..<(http10 ? 1 : 4), using: &rng)
        switch framing {
        case 0:
            out += "Content-Length: \(body.count)\r\n"
            bytes = Array((out + "\r\n").utf8) + body
        case 1:
            out += "Transfer-Encoding: chunked\r\n\r\n"
            bytes = Array(out.utf8)
            var rest = body[...]
            while !rest.isEmpty {
                let n = min(rest.count, Int.random(in: 1...200, using: &rng))
                let ext = ["", ";x=1", ";name=\"v\""].randomElement(using: &rng)!
                let size = Bool.random(using: &rng) ? String(n, radix: 16) : String(n, radix: 16, uppercase: true)
                bytes += Array("\(size)\(ext)\r\n".utf8) + rest.prefix(n) + Array("\r\n".utf8)
                rest = rest.dropFirst(n)
            }
            bytes += Array((Bool.random(using: &rng) ? "0\r\n\r\n" : "0\r\nX-Trailer: t\r\n\r\n").utf8)
        case 2:
            // A coding other than chunked last: the body runs to the close.
            out += "Transfer-Encoding: gzip\r\n\r\n"
            bytes = Array(out.utf8) + body
        default:
            out += "Connection: close\r\n\r\n"
            bytes = Array(out.utf8) + body
        }
        return (bytes, framing >= 2)
    }

    @Test("random well-formed responses, cut anywhere: the same head, body and end as NIO's decoder")
    func agreesWithNIO() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(seed: seed)
        for round in 0..<500 {
            let (bytes, closeDelimited) = Self.randomResponse(&rng)
            let expected = try Self.nioParse(bytes, close: closeDelimited)
            #expect(expected.ended)
            let cuts = (0..<Int.random(in: 0..<8, using: &rng)).map { _ in Int.random(in: 0...bytes.count, using: &rng)
            }
            let got = try Self.parse(bytes, cuts: cuts, close: closeDelimited)
            #expect(got == expected, "seed \(seed), round \(round)")
            if got != expected { return }
        }
    }

    @Test("fed one byte at a time, a chunked response parses as when whole")
    func byteByByte() throws {
        let bytes = Array(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nT: x\r\n\r\n".utf8)
        let got = try Self.parse(bytes, cuts: Array(1..<bytes.count))
        #expect(got.body == Array("hello!".utf8) && got.ended && got.keepAlive)
    }

    @Test("bare LF line ends are accepted; HTTP/1.0 and Connection: close are not kept alive")
    func lenientLineEndsAndKeepAlive() throws {
        let lf = try Self.parse(Array("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi".utf8))
        #expect(lf.body == Array("hi".utf8) && lf.ended && lf.keepAlive)
        #expect(!(try Self.parse(Array("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n".utf8))).keepAlive)
        #expect(
            !(try Self.parse(Array("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))).keepAlive
        )
        let noContent = try Self.parse(Array("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n".utf8))
        #expect(noContent.ended && noContent.body.isEmpty && noContent.keepAlive)
    }

    @Test("a body delimited by the close ends only at the close, and the connection is not reused")
    func closeDelimited() throws {
        let open = try Self.parse(Array("HTTP/1.1 200 OK\r\n\r\nabc".utf8))
        #expect(open.body == Array("abc".utf8) && !open.ended && !open.keepAlive)
        #expect((try Self.parse(Array("HTTP/1.1 200 OK\r\n\r\nabc".utf8), close: true)).ended)
        // Cut short: a fixed or chunked body does not end at the close.
        #expect(!(try Self.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc".utf8), close: true)).ended)
    }

    static let malformedCases: [(String, UpstreamResponseError)] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .conflictingFraming),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n\r\n", .conflictingFraming),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", .badContentLength),
        ("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", .badHeader),
        ("HTTP/1.1 200 OK\r\nX: a\u{0}b\r\n\r\n", .badHeader),
        ("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", .badHeader),
        ("HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n", .badHeader),
        ("HTTP/1.1 200 OK\r\n: v\r\n\r\n", .badHeader),
        ("HTTP/2 200 OK\r\n\r\n", .badStatusLine),
        ("HTTP/1.1 20 OK\r\n\r\n", .badStatusLine),
        ("HTTP/1.1 099 OK\r\n\r\n", .badStatusLine),
        ("HTTP/1.1 200OK\r\n\r\n", .badStatusLine),
        ("SMTP/1.1 200 OK\r\n\r\n", .badStatusLine),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 junk\r\nabc\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 ;x\r\nabc\r\n", .badChunk),
        // Chunked framing takes CRLF only.
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\r\nabc\r\n", .badChunk),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", .badHeader),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\rb\r\n\r\n", .badHeader),
    ]

    @Test("ambiguous or malformed responses are errors, each for its reason", arguments: 0..<malformedCases.count)
    func malformed(_ index: Int) {
        let (text, reason) = Self.malformedCases[index]
        let bytes = Array(text.utf8)
        #expect(throws: reason) { _ = try Self.parse(bytes) }
        // However it is split.
        #expect(throws: reason) { _ = try Self.parse(bytes, cuts: Array(1..<bytes.count)) }
        #expect(throws: reason) { _ = try Self.parse(bytes, cuts: [bytes.count / 2]) }
    }

    @Test("heads, size lines and trailers are bounded, whole or fed in pieces")
    func bounded() {
        let hugeHead =
            "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Pad: \(String(repeating: "a", count: 1000))\r\n", count: 90)
        let endlessLine = "HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 90_000)
        let longSize = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 5000)
        let hugeTrailers =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + String(repeating: "T: \(String(repeating: "t", count: 1000))\r\n", count: 90)
        let cases: [(String, UpstreamResponseError)] = [
            (hugeHead, .headTooLarge), (endlessLine, .headTooLarge), (longSize, .badChunk),
            (hugeTrailers, .trailersTooLarge),
        ]
        for (text, reason) in cases {
            let bytes = Array(text.utf8)
            #expect(throws: reason) { _ = try Self.parse(bytes) }
            #expect(throws: reason) {
                _ = try Self.parse(bytes, cuts: Array(stride(from: 7, to: bytes.count, by: 97)))
            }
        }
    }

    @Test("a 101 is handed on (the connection refuses it); interim 1xx answers are skipped")
    func informational() throws {
        let upgraded = try Self.parse(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nrest".utf8))
        #expect(upgraded.status == 101)
        let skipped = try Self.parse(
            Array(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
                    .utf8))
        #expect(skipped.status == 200 && skipped.body == [UInt8(ascii: "x")] && skipped.ended)
    }

    @Test("the end is where the framing says: later bytes stay unread, and HTTP/1.0 with a coding is not reused")
    func endAndReuse() throws {
        let two = try Self.parse(Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n".utf8))
        #expect(two.body == Array("ok".utf8) && two.ended && two.leftover == 17)
        let chunked = try Self.parse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX".utf8))
        #expect(chunked.ended && chunked.leftover == 1)
        let old = try Self.parse(
            Array(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
                    .utf8))
        #expect(old.ended && old.body == [UInt8(ascii: "x")] && !old.keepAlive)
        let oldFixed = try Self.parse(
            Array("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx".utf8))
        #expect(oldFixed.ended && oldFixed.keepAlive)
    }
}

extension UpstreamResponseParserTests {
    @Test("token bytes are exactly RFC 9110's tchar")
    func tokenBytes() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for b in UInt8.min...UInt8.max {
            #expect(HTTP1Syntax.isTokenByte(b) == tchar.contains(b), "byte \(b)")
        }
    }

    @Test("bytes that cannot begin a status line fail at once, before any line end (a TLS alert, say)")
    func garbageFailsFast() throws {
        let alert: [UInt8] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]
        #expect(throws: UpstreamResponseError.badStatusLine) { _ = try Self.parse(alert) }
        #expect(throws: UpstreamResponseError.badStatusLine) { _ = try Self.parse(Array("HTTP/2".utf8)) }
        // A status line that has only begun is waited for.
        #expect(try Self.parse(Array("HTTP/1".utf8)).status == 0)
        #expect(try Self.parse(Array("HT".utf8), cuts: [1]).status == 0)
    }
}
