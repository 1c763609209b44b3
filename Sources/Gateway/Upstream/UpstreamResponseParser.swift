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

    /// Bytes of one response head (status line and headers), as NIO's decoder allows by default.
    static let maxHeadBytes = 80 * 1024
    /// A chunk-size line, with its extensions.
    static let maxChunkLineBytes = 4096

    fileprivate enum State {
        case statusLine
        case headers
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var state = State.statusLine
    /// A line not yet ended by the bytes read so far.
    private var partial: [UInt8] = []
    private var headBytes = 0
    private var version = HTTPVersion.http1_1
    private var status = HTTPResponseStatus.ok
    private var headers = HTTPHeaders()

    /// Whether the connection may carry another exchange once this response has ended.
    private(set) var keepAlive = true

    /// The next event in `buffer`, consuming what it used; nil when `buffer` holds no more of one.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Event? {
        while true {
            switch state {
            case .statusLine, .headers:
                guard let line = try takeLine(&buffer, limit: Self.maxHeadBytes - headBytes) else {
                    // Bytes that cannot begin a status line (a TLS alert from a port spoken to in plain
                    // HTTP) fail at once rather than wait for a line end that may never come.
                    if case .statusLine = state, !Self.couldBeginStatusLine(partial) {
                        throw UpstreamResponseError.badStatusLine
                    }
                    return nil
                }
                headBytes += line.count + 2
                if case .statusLine = state {
                    try parseStatusLine(line)
                    state = .headers
                } else if line.isEmpty {
                    if let head = try endOfHead() { return .head(head) }
                } else {
                    try parseHeader(line)
                }
            case .fixed(let remaining):
                if remaining == 0 { return finish() }
                guard buffer.readableBytes > 0 else { return nil }
                let n = min(remaining, buffer.readableBytes)
                state = .fixed(remaining: remaining - n)
                return .body(buffer.readSlice(length: n)!)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let n = min(remaining, buffer.readableBytes)
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
                return .body(buffer.readSlice(length: n)!)
            case .chunkSize:
                let size: Int
                // The usual case, a whole size line in this read, is parsed where it lies.
                if partial.isEmpty, let (inPlace, used) = try buffer.withUnsafeReadableBytes(Self.chunkLine) {
                    buffer.moveReaderIndex(forwardBy: used)
                    size = inPlace
                } else {
                    guard let line = try takeLine(&buffer, limit: Self.maxChunkLineBytes, requireCR: true) else {
                        return nil
                    }
                    size = try Self.chunkSize(line)
                }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
                headBytes = 0
            case .chunkDataEnd:
                if partial.isEmpty, buffer.readableBytes >= 2,
                    buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A
                {
                    buffer.moveReaderIndex(forwardBy: 2)
                } else {
                    guard let line = try takeLine(&buffer, limit: 1, requireCR: true) else { return nil }
                    guard line.isEmpty else { throw UpstreamResponseError.badChunk }
                }
                state = .chunkSize
            case .trailers:
                guard let line = try takeLine(&buffer, limit: Self.maxHeadBytes - headBytes) else { return nil }
                headBytes += line.count + 2
                if line.isEmpty { return finish() }
                // Trailers are not relayed (the client's response is already under way), only checked.
                _ = try Self.field(line)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .done:
                return nil
            }
        }
    }

    /// The connection closed: true if that ends the response (a body delimited by the close), false if
    /// the response was cut short.
    mutating func inputClosed() -> Bool {
        if case .untilClose = state {
            state = .done
            return true
        }
        return false
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    private mutating func finish() -> Event {
        state = .done
        return .end
    }

    /// Takes one line ended by LF (an optional CR before it dropped), or stashes the bytes of an
    /// unfinished one and returns nil. A line longer than `limit` bytes, or a CR elsewhere, throws; so
    /// does a bare LF where `requireCR` (chunked framing, where RFC 9112 allows no other line end).
    private mutating func takeLine(
        _ buffer: inout ByteBuffer, limit: Int, requireCR: Bool = false
    ) throws -> ArraySlice<UInt8>? {
        guard buffer.readableBytes > 0 else { return nil }
        let found = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
        let error: UpstreamResponseError =
            switch state {
            case .statusLine, .headers: .headTooLarge
            case .trailers: .trailersTooLarge
            default: .badChunk
            }
        guard let found else {
            guard partial.count + buffer.readableBytes <= limit else { throw error }
            partial.append(contentsOf: buffer.readBytes(length: buffer.readableBytes)!)
            return nil
        }
        guard partial.count + found <= limit else { throw error }
        var line: ArraySlice<UInt8>
        if partial.isEmpty {
            line = buffer.readBytes(length: found)![...]
        } else {
            partial.append(contentsOf: buffer.readBytes(length: found)!)
            line = partial[...]
            partial = []
        }
        buffer.moveReaderIndex(forwardBy: 1)
        if line.last == UInt8(ascii: "\r") {
            line.removeLast()
        } else if requireCR {
            throw UpstreamResponseError.badChunk
        }
        if line.contains(UInt8(ascii: "\r")) {
            throw state.isChunkFraming ? UpstreamResponseError.badChunk : UpstreamResponseError.badHeader
        }
        return line
    }

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
        guard Self.isFieldValue(bytes[12...]) else { throw UpstreamResponseError.badStatusLine }
        version = bytes[7] == UInt8(ascii: "1") ? .http1_1 : .http1_0
        status = HTTPResponseStatus(statusCode: code, reasonPhrase: reason)
        headers = HTTPHeaders()
    }

    private mutating func parseHeader(_ line: ArraySlice<UInt8>) throws {
        let (name, value) = try Self.field(line)
        headers.add(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self))
    }

    /// A header or trailer line's name (a token) and value (without surrounding whitespace).
    private static func field(_ line: ArraySlice<UInt8>) throws -> (ArraySlice<UInt8>, ArraySlice<UInt8>) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
            line[line.startIndex..<colon].allSatisfy(isTokenByte)
        else { throw UpstreamResponseError.badHeader }
        var value = line[(colon + 1)...]
        while let b = value.first, b == 0x20 || b == 0x09 { value.removeFirst() }
        while let b = value.last, b == 0x20 || b == 0x09 { value.removeLast() }
        guard isFieldValue(value) else { throw UpstreamResponseError.badHeader }
        return (line[line.startIndex..<colon], value)
    }

    /// Decides the body's framing; nil for an interim (1xx) response, which is skipped.
    private mutating func endOfHead() throws -> HTTPResponseHead? {
        let code = Int(status.code)
        if code < 200 && code != 101 {
            state = .statusLine
            headBytes = 0
            return nil
        }
        let head = HTTPResponseHead(version: version, status: status, headers: headers)
        keepAlive = head.isKeepAlive
        // Presence decides, not the values: an empty field is still a claim about the framing.
        let hasLength = headers.contains(name: "content-length")
        let hasCodings = headers.contains(name: "transfer-encoding")
        if code == 101 || code == 204 || code == 304 {
            state = .fixed(remaining: 0)
        } else if hasCodings {
            guard !hasLength else { throw UpstreamResponseError.conflictingFraming }
            // HTTP/1.0 has no transfer codings: the framing is suspect, so the connection is not reused.
            if version == .http1_0 { keepAlive = false }
            if headers[canonicalForm: "transfer-encoding"].last?.lowercased() == "chunked" {
                state = .chunkSize
                headBytes = 0
            } else {
                // Not chunked last: the body runs to the close (RFC 9112 6.3).
                state = .untilClose
                keepAlive = false
            }
        } else if hasLength {
            // One field with one number: a repeat or a list is refused, as llhttp does, even when the
            // values agree.
            let values = headers["content-length"]
            guard values.count == 1, let length = Self.contentLength(Substring(values[0])) else {
                throw UpstreamResponseError.badContentLength
            }
            state = .fixed(remaining: length)
        } else {
            state = .untilClose
            keepAlive = false
        }
        partial = []
        return head
    }

    static func contentLength(_ raw: Substring) -> Int? {
        var value = raw
        while let c = value.first, c == " " || c == "\t" { value.removeFirst() }
        while let c = value.last, c == " " || c == "\t" { value.removeLast() }
        guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            return nil
        }
        return Int(value)
    }

    /// A size line whole at the start of `raw`: its size and the bytes it takes; nil if unfinished.
    private static func chunkLine(_ raw: UnsafeRawBufferPointer) throws -> (Int, Int)? {
        let scan = min(raw.count, maxChunkLineBytes + 1)
        guard let lf = raw[0..<scan].firstIndex(of: UInt8(ascii: "\n")) else {
            if scan > maxChunkLineBytes { throw UpstreamResponseError.badChunk }
            return nil
        }
        guard lf > 0, raw[lf - 1] == UInt8(ascii: "\r") else { throw UpstreamResponseError.badChunk }
        let line = raw[0..<(lf - 1)]
        if line.contains(UInt8(ascii: "\r")) { throw UpstreamResponseError.badChunk }
        return (try chunkSize(line), lf + 1)
    }

    static func chunkSize<Line: Collection<UInt8>>(_ line: Line) throws -> Int where Line.Index == Int {
        var size = 0
        var digits = 0
        var i = line.startIndex
        while i < line.endIndex, let d = hexValue(line[i]) {
            // 15 hex digits stay below Int.max; no real chunk comes near.
            guard digits < 15 else { throw UpstreamResponseError.badChunk }
            size = size << 4 | d
            digits += 1
            i += 1
        }
        guard digits > 0 else { throw UpstreamResponseError.badChunk }
        // Extensions are ignored, but must be printable. No whitespace before them, as llhttp holds.
        guard i == line.endIndex || (line[i] == UInt8(ascii: ";") && isFieldValue(line[i...])) else {
            throw UpstreamResponseError.badChunk
        }
        return size
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// RFC 9110's tchar: letters, digits and !#$%&'*+-.^_`|~, as bit masks over bytes 0-63 and 64-127.
    static func isTokenByte(_ b: UInt8) -> Bool {
        if b < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> b & 1 == 1 }
        if b < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> (b - 64) & 1 == 1 }
        return false
    }

    /// Visible bytes, spaces, tabs and obs-text; no other control byte.
    static func isFieldValue<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> Bool {
        bytes.allSatisfy { $0 >= 0x20 ? $0 != 0x7F : $0 == 0x09 }
    }
}

extension UpstreamResponseParser.State {
    fileprivate var isChunkFraming: Bool {
        switch self {
        case .chunkSize, .chunkDataEnd: true
        default: false
        }
    }
}
