import NIOCore
import NIOHTTP1

/// Why an upstream's response could not be framed. The connection is closed: it is out of step.
enum UpstreamResponseError: Error, Equatable, CustomStringConvertible {
    case headTooLarge
    case badStatusLine
    case badHeader
    case badContentLength
    /// Both `Transfer-Encoding` and `Content-Length`: the framing is ambiguous, so neither is trusted.
    case conflictingFraming
    case badChunk
    case trailersTooLarge

    var description: String {
        switch self {
        case .headTooLarge: "the upstream's response head is larger than \(UpstreamResponseParser.maxHeadBytes) bytes"
        case .badStatusLine: "the upstream's status line is malformed"
        case .badHeader: "the upstream sent a malformed response header"
        case .badContentLength: "the upstream sent an invalid Content-Length"
        case .conflictingFraming: "the upstream sent both Transfer-Encoding and Content-Length"
        case .badChunk: "the upstream's chunked body is malformed"
        case .trailersTooLarge: "the upstream's chunked trailers are too large"
        }
    }
}

/// HTTP/1.1 response framing for an upstream connection: the head, then the body as slices of the bytes
/// read (never copied), then the end.
///
/// The relay's hot path runs through here once per socket read, so it is a value on the connection's
/// handler with no pipeline stage, part enum or boxing of its own. It accepts what RFC 9112 lets a
/// recipient accept (a bare LF ends a line, interim 1xx responses are skipped) and nothing ambiguous:
/// obs-fold, control bytes in a header, a repeated `Content-Length` and `Content-Length` with
/// `Transfer-Encoding` are errors.
struct UpstreamResponseParser {
    enum Event {
        case head(HTTPResponseHead)
        case body(ByteBuffer)
        case end
    }

    /// Bytes of one response head (status line and headers), as NIO's decoder allows by default; the
    /// same for trailers.
    static let maxHeadBytes = 80 * 1024

    private var lines = HTTP1LineReader()
    /// Set once the head has ended: the body's framing.
    private var body: HTTP1BodyReader?
    private var sawStatusLine = false
    private var headBytes = 0
    private var version = HTTPVersion.http1_1
    private var status = HTTPResponseStatus.ok
    private var headers = HTTPHeaders()

    /// Whether the connection may carry another exchange once this response has ended.
    private(set) var keepAlive = true

    /// The next event in `buffer`, consuming what it used; nil when `buffer` holds no more of one.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Event? {
        if body != nil {
            do throws(HTTP1BodyReader.Failure) {
                switch try body!.next(&buffer) {
                case .body(let slice): return .body(slice)
                case .end: return .end
                case nil: return nil
                }
            } catch {
                switch error {
                case .badChunk: throw UpstreamResponseError.badChunk
                case .badTrailer: throw UpstreamResponseError.badHeader
                case .trailersTooLarge: throw UpstreamResponseError.trailersTooLarge
                }
            }
        }
        while true {
            let taken: ArraySlice<UInt8>?
            do throws(HTTP1LineReader.Failure) {
                taken = try lines.take(&buffer, limit: Self.maxHeadBytes - headBytes, requireCR: false)
            } catch {
                throw error == .tooLong ? UpstreamResponseError.headTooLarge : UpstreamResponseError.badHeader
            }
            guard let line = taken else {
                // Bytes that cannot begin a status line (a TLS alert from a port spoken to in plain HTTP)
                // fail at once rather than wait for a line end that may never come.
                if !sawStatusLine, !Self.couldBeginStatusLine(lines.partial) {
                    throw UpstreamResponseError.badStatusLine
                }
                return nil
            }
            headBytes += line.count + 2
            if !sawStatusLine {
                try parseStatusLine(line)
                sawStatusLine = true
            } else if line.isEmpty {
                if let head = try endOfHead() { return .head(head) }
            } else {
                guard let (name, value) = HTTP1Syntax.field(line) else { throw UpstreamResponseError.badHeader }
                headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
            }
        }
    }

    /// The connection closed: true if that ends the response (a body delimited by the close), false if
    /// the response was cut short.
    mutating func inputClosed() -> Bool {
        guard body != nil else { return false }
        return body!.inputClosed()
    }

    var isDone: Bool { body?.isDone ?? false }

    private static func couldBeginStatusLine(_ bytes: [UInt8]) -> Bool {
        let version = "HTTP/1.".utf8
        return bytes.prefix(version.count).elementsEqual(version.prefix(min(bytes.count, version.count)))
    }

    private mutating func parseStatusLine(_ line: ArraySlice<UInt8>) throws {
        // "HTTP/1.x NNN[ reason]"
        let bytes = Array(line)
        guard bytes.count >= 12, bytes[0..<7].elementsEqual("HTTP/1.".utf8), bytes[8] == UInt8(ascii: " "),
            bytes[7] == UInt8(ascii: "0") || bytes[7] == UInt8(ascii: "1")
        else { throw UpstreamResponseError.badStatusLine }
        var code = 0
        for b in bytes[9..<12] {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { throw UpstreamResponseError.badStatusLine }
            code = code * 10 + Int(b - UInt8(ascii: "0"))
        }
        guard code >= 100, bytes.count == 12 || bytes[12] == UInt8(ascii: " ") else {
            throw UpstreamResponseError.badStatusLine
        }
        let reason = bytes.count > 13 ? String(decoding: bytes[13...], as: UTF8.self) : ""
        guard HTTP1Syntax.isFieldValue(bytes[12...]) else { throw UpstreamResponseError.badStatusLine }
        version = bytes[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        status = HTTPResponseStatus(statusCode: code, reasonPhrase: reason)
        headers = HTTPHeaders()
    }

    /// Decides the body's framing; nil for an interim (1xx) response, which is skipped.
    private mutating func endOfHead() throws -> HTTPResponseHead? {
        let code = Int(status.code)
        if code < 200 && code != 101 {
            sawStatusLine = false
            headBytes = 0
            return nil
        }
        let head = HTTPResponseHead(version: version, status: status, headers: headers)
        keepAlive = head.isKeepAlive
        // Presence decides, not the values: an empty field is still a claim about the framing.
        let hasLength = headers.contains(name: "content-length")
        let hasCodings = headers.contains(name: "transfer-encoding")
        let framing: HTTP1BodyReader.Framing
        if code == 101 || code == 204 || code == 304 {
            framing = .fixed(0)
        } else if hasCodings {
            guard !hasLength else { throw UpstreamResponseError.conflictingFraming }
            // HTTP/1.0 has no transfer codings: the framing is suspect, so the connection is not reused.
            if version == .http1_0 { keepAlive = false }
            if headers[canonicalForm: "transfer-encoding"].last?.lowercased() == "chunked" {
                framing = .chunked
            } else {
                // Not chunked last: the body runs to the close (RFC 9112 6.3).
                framing = .untilClose
                keepAlive = false
            }
        } else if hasLength {
            // One field with one number: a repeat or a list is refused, as llhttp does, even when the
            // values agree.
            let values = headers["content-length"]
            guard values.count == 1, let length = HTTP1Syntax.contentLength(Substring(values[0])) else {
                throw UpstreamResponseError.badContentLength
            }
            framing = .fixed(length)
        } else {
            framing = .untilClose
            keepAlive = false
        }
        lines.reset()
        body = HTTP1BodyReader(framing, maxTrailerBytes: Self.maxHeadBytes, strictTrailers: false)
        return head
    }
}
