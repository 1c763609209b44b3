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
        var length = head.method.rawValue.utf8.count + 1 + head.uri.utf8.count + " HTTP/1.1\r\n".utf8.count + 2
        for (name, value) in head.headers {
            // Values reach here from client headers (already legalized by the server) and from the
            // gateway's configuration; either way no CR, LF or NUL may split the head.
            guard Self.isToken(name), Self.isFieldValue(value) else { throw UpstreamRequestError(header: name) }
            length += name.utf8.count + 2 + value.utf8.count + 2
        }
        var buffer = allocator.buffer(capacity: length + body.readableBytes)
        buffer.writeHead(length: length) { out in
            out.put(head.method.rawValue)
            out.put(UInt8(ascii: " "))
            out.put(head.uri)
            out.put(" HTTP/1.1\r\n")
            for (name, value) in head.headers {
                out.put(name)
                out.put(": ")
                out.put(value)
                out.put("\r\n")
            }
            out.put("\r\n")
        }
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
