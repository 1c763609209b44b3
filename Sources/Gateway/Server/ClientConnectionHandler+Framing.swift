import HTTPTypes
import Metering
import NIOCore
import NIOHTTP1

/// How the client connection's handler writes responses as bytes.
extension ClientConnectionHandler {
    /// How one response's body goes on the wire.
    enum BodyFraming {
        case chunked
        /// As it is: the head has a `Content-Length`, or the connection closes at its end.
        case identity
        /// No body at all (a response to HEAD, 1xx, 204, 304).
        case none
    }

    /// What a response needs to know about its request, in order (requests may be pipelined).
    struct Exchange {
        var keepAlive: Bool
        var isHTTP10: Bool
        var isHead: Bool
    }

    /// How a response head goes out for `exchange`: its fields, its body's framing, and whether the
    /// connection closes after it (`closing`: it must).
    static func plan(_ response: HTTPResponse, for exchange: Exchange, closing: Bool) -> (
        head: HTTPResponse, framing: BodyFraming, addChunked: Bool, closes: Bool
    ) {
        var head = withoutFraming(response)
        if closing { head.headerFields[.connection] = "close" }
        let fields = head.headerFields
        var closes = fields.combined(.connection).map { ClientRequestParser.isOption($0[...], "close") } ?? false
        let code = head.status.code
        let hasBody = !exchange.isHead && code != 204 && code != 304
        let chunked: Bool
        if fields.contains(.contentLength) {
            chunked = false
        } else if fields.contains(.transferEncoding) {
            chunked = true
        } else if exchange.isHTTP10 {
            // HTTP/1.0 has no chunked coding: the body ends with the connection.
            chunked = false
            if hasBody { closes = true }
        } else {
            chunked = code != 204 && code != 304
        }
        let framing: BodyFraming = !hasBody ? .none : chunked ? .chunked : .identity
        return (head, framing, chunked && !fields.contains(.transferEncoding), closes)
    }

    /// No body and so no framing fields, as NIO's encoder held: a 1xx or 204 has neither, a 304 no
    /// coding.
    static func withoutFraming(_ response: HTTPResponse) -> HTTPResponse {
        var response = response
        let code = response.status.code
        if code < 200 || code == 204 {
            response.headerFields[.contentLength] = nil
            response.headerFields[.transferEncoding] = nil
        } else if code == 304 {
            response.headerFields[.transferEncoding] = nil
        }
        return response
    }

    /// Status line, fields and the blank line. Swift HTTP Types has checked every name and value.
    static func writeHead(_ response: HTTPResponse, addChunked: Bool, into buffer: inout ByteBuffer) {
        let code = response.status.code
        // A known code gets its standard reason, as NIO's encoder wrote it.
        let reason = HTTPResponseStatus(statusCode: code, reasonPhrase: response.status.reasonPhrase).reasonPhrase
        let chunked: StaticString = "transfer-encoding: chunked\r\n"
        var length = "HTTP/1.1 200 \r\n".utf8.count + reason.utf8.count + 2
        for field in response.headerFields { length += field.name.rawName.utf8.count + 2 + field.value.utf8.count + 2 }
        if addChunked { length += chunked.utf8CodeUnitCount }
        buffer.writeHead(length: length) { out in
            out.put("HTTP/1.1 ")
            out.put(UInt8(ascii: "0") + UInt8(code / 100 % 10))
            out.put(UInt8(ascii: "0") + UInt8(code / 10 % 10))
            out.put(UInt8(ascii: "0") + UInt8(code % 10))
            out.put(UInt8(ascii: " "))
            out.put(reason)
            out.put("\r\n")
            for field in response.headerFields {
                out.put(field.name.rawName)
                out.put(": ")
                out.put(field.value)
                out.put("\r\n")
            }
            if addChunked { out.put(chunked) }
            out.put("\r\n")
        }
    }

    /// One chunk of chunked coding: its size in hex, CRLF, the bytes, CRLF; nothing for an empty one,
    /// which would end the body.
    static func writeChunk(_ chunk: ByteBuffer, into buffer: inout ByteBuffer) {
        let size = chunk.readableBytes
        guard size > 0 else { return }
        let digits = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4
        // One measured span: each ByteBuffer write checks capacity and exclusivity, four a relayed event.
        buffer.writeHead(length: digits + 2 + size + 2) { out in
            for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                let digit = UInt8((size >> shift) & 0xF)
                out.put(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") - 10 + digit)
            }
            out.put("\r\n")
            out.put(chunk)
            out.put("\r\n")
        }
    }

    static func writeField(_ field: HTTPField, into out: inout ByteBuffer) {
        out.writeString(field.name.rawName)
        out.writeStaticString(": ")
        out.writeString(field.value)
        out.writeStaticString("\r\n")
    }

    /// The answer to a request that cannot be read: a JSON error in the API's format, with a request id,
    /// and `Connection: close`.
    static func malformedRequestResponse(_ error: HTTPParserError, allocator: ByteBufferAllocator) -> ByteBuffer {
        let tooLarge = error == .headerOverflow
        let status: HTTPResponse.Status = tooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        let body = ByteBuffer(
            string: ErrorBody.render(
                dialect: .openai, status: status.code,
                message: tooLarge
                    ? "The request headers are larger than this gateway accepts."
                    : "The request is not valid HTTP/1.1 (\(error)).",
                openAIType: "invalid_request_error", code: tooLarge ? "headers_too_large" : "malformed_request"))
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.requestID] = RequestIDs.next()
        head.headerFields[.connection] = "close"
        var out = allocator.buffer(capacity: 256 + body.readableBytes)
        Self.writeHead(head, addChunked: false, into: &out)
        out.writeImmutableBuffer(body)
        return out
    }
}
