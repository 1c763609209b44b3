import NIOCore
import NIOHTTP1

/// A request head the gateway will not put on the wire.
struct UpstreamRequestError: Error, Equatable, CustomStringConvertible {
    /// The header's name only: its value may be a credential.
    var header: String

    var description: String { "the request to the upstream has an invalid header or target (\(header))" }
}

/// An upstream request as one buffer, head and body, written in one go. It replaces NIO's encoder and
/// header validator, two pipeline stages that every read of the response would otherwise pass through.
enum UpstreamRequestWriter {
    static func encode(
        _ head: HTTPRequestHead, body: ByteBuffer, allocator: ByteBufferAllocator
    ) throws -> ByteBuffer {
        guard !head.uri.isEmpty, head.uri.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw UpstreamRequestError(header: ":path")
        }
        var buffer = allocator.buffer(capacity: 512 + body.readableBytes)
        buffer.writeString(head.method.rawValue)
        buffer.writeInteger(UInt8(ascii: " "))
        buffer.writeString(head.uri)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        for (name, value) in head.headers {
            // Values reach here from client headers (already legalized by the server) and from the
            // gateway's configuration; either way no CR, LF or NUL may split the head.
            guard Self.isToken(name), Self.isFieldValue(value) else { throw UpstreamRequestError(header: name) }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        buffer.writeImmutableBuffer(body)
        return buffer
    }

    // Over the UTF-8 buffer, not the UTF8View's iterator: a few instructions a byte instead of a dozen.
    private static func isToken(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            for b in bytes where !HTTP1Syntax.isTokenByte(b) { return false }
            return true
        }
    }

    private static func isFieldValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { HTTP1Syntax.isFieldValue($0) }
    }
}
