import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing

@testable import Gateway

/// Heads are written into one measured span (`ByteBuffer.writeHead`); the bytes must be what writing
/// each piece in turn gives, for any names and values, multi-byte UTF-8 included.
@Suite("Head writing")
struct HeadWriterTests {
    static let values = ["", "v", "application/json", "caf\u{e9} \u{4e2d}\u{6587}", String(repeating: "x", count: 300)]

    @Test("an upstream request head and body, byte for byte")
    func upstreamRequest() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var headers = HTTPHeaders()
            for i in 0..<Int.random(in: 0...8, using: &rng) {
                headers.add(name: "x-h\(i)", value: Self.values.randomElement(using: &rng)!)
            }
            let uri = ["/", "/v1/chat/completions", "/p?q=\u{e9}"].randomElement(using: &rng)!
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: uri, headers: headers)
            let body = ByteBuffer(string: Self.values.randomElement(using: &rng)!)
            let encoded = try UpstreamRequestWriter.encode(head, body: body, allocator: ByteBufferAllocator())
            var expected = "POST \(uri) HTTP/1.1\r\n"
            for (name, value) in headers { expected += "\(name): \(value)\r\n" }
            expected += "\r\n" + String(buffer: body)
            #expect(String(buffer: encoded) == expected)
        }
    }

    @Test("a response head, byte for byte, with and without chunked coding")
    func responseHead() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var fields = HTTPFields()
            for i in 0..<Int.random(in: 0...8, using: &rng) {
                fields.append(
                    HTTPField(name: HTTPField.Name("x-h\(i)")!, value: Self.values.randomElement(using: &rng)!))
            }
            let status = [200, 204, 404, 429, 599].randomElement(using: &rng)!
            let chunked = Bool.random(using: &rng)
            var out = ByteBuffer(string: "before|")
            ClientConnectionHandler.writeHead(
                HTTPResponse(status: .init(code: status), headerFields: fields), addChunked: chunked, into: &out)
            let reason = HTTPResponseStatus(statusCode: status).reasonPhrase
            var expected = "before|HTTP/1.1 \(status) \(reason)\r\n"
            for field in fields { expected += "\(field.name.rawName): \(field.value)\r\n" }
            if chunked { expected += "transfer-encoding: chunked\r\n" }
            expected += "\r\n"
            #expect(String(buffer: out) == expected)
        }
    }
}

@Suite("HTTP Date")
struct HTTPDateTests {
    @Test("IMF-fixdate, as RFC 9110 writes it")
    func format() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(1_796_690_385) == "Tue, 08 Dec 2026 00:39:45 GMT")
        #expect(HTTPDate.format(951_865_509) == "Tue, 29 Feb 2000 23:05:09 GMT")
    }
}
