import NIOCore

/// HTTP/1.1 syntax shared by the two parsers the gateway runs itself: requests from clients
/// (``ClientRequestParser``) and responses from upstreams (``UpstreamResponseParser``).
enum HTTP1Syntax {
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

    /// A header or trailer line's name (a token) and value (without surrounding whitespace); nil if the
    /// line is not one (no whitespace before the colon, no control bytes, no obs-fold).
    static func field(_ line: ArraySlice<UInt8>) -> (name: ArraySlice<UInt8>, value: ArraySlice<UInt8>)? {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
            line[line.startIndex..<colon].allSatisfy(isTokenByte)
        else { return nil }
        var value = line[(colon + 1)...]
        while let b = value.first, b == 0x20 || b == 0x09 { value.removeFirst() }
        while let b = value.last, b == 0x20 || b == 0x09 { value.removeLast() }
        guard isFieldValue(value) else { return nil }
        return (line[line.startIndex..<colon], value)
    }

    /// One `Content-Length` value: decimal digits only, at most 18 of them (no overflow).
    static func contentLength(_ raw: Substring) -> Int? {
        var value = raw
        while let c = value.first, c == " " || c == "\t" { value.removeFirst() }
        while let c = value.last, c == " " || c == "\t" { value.removeLast() }
        guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            return nil
        }
        return Int(value)
    }

    /// A chunk-size line's size; nil if it is not one.
    static func chunkSize<Line: Collection<UInt8>>(_ line: Line) -> Int? where Line.Index == Int {
        var size = 0
        var digits = 0
        var i = line.startIndex
        while i < line.endIndex, let d = hexValue(line[i]) {
            // 15 hex digits stay below Int.max; no real chunk comes near.
            guard digits < 15 else { return nil }
            size = size << 4 | d
            digits += 1
            i += 1
        }
        guard digits > 0 else { return nil }
        // Extensions are ignored, but must be printable. No whitespace before them, as llhttp holds.
        guard i == line.endIndex || (line[i] == UInt8(ascii: ";") && isFieldValue(line[i...])) else { return nil }
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
}

/// Lines of an HTTP/1.1 message as they arrive, possibly split across reads.
struct HTTP1LineReader {
    enum Failure: Error {
        /// Longer than the limit.
        case tooLong
        /// A CR inside the line, or a bare LF where a CR must come before it.
        case badLineEnd
    }

    /// A line not yet ended by the bytes read so far.
    private(set) var partial: [UInt8] = []

    /// Takes one line ended by LF (an optional CR before it dropped), or stashes the bytes of an
    /// unfinished one and returns nil. A line longer than `limit` bytes, or a CR elsewhere, throws; so
    /// does a bare LF where `requireCR`.
    mutating func take(_ buffer: inout ByteBuffer, limit: Int, requireCR: Bool) throws(Failure) -> ArraySlice<UInt8>? {
        guard buffer.readableBytes > 0 else { return nil }
        let found = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
        guard let found else {
            guard partial.count + buffer.readableBytes <= limit else { throw .tooLong }
            partial.append(contentsOf: buffer.readableBytesView)
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return nil
        }
        guard partial.count + found <= limit else { throw .tooLong }
        var line: ArraySlice<UInt8>
        if partial.isEmpty {
            line = buffer.readBytes(length: found)![...]
        } else {
            partial.append(contentsOf: buffer.readableBytesView.prefix(found))
            buffer.moveReaderIndex(forwardBy: found)
            line = partial[...]
            partial = []
        }
        buffer.moveReaderIndex(forwardBy: 1)
        if line.last == UInt8(ascii: "\r") {
            line.removeLast()
        } else if requireCR {
            throw .badLineEnd
        }
        if line.contains(UInt8(ascii: "\r")) { throw .badLineEnd }
        return line
    }

    mutating func reset() { partial = [] }
}

/// The body of one HTTP/1.1 message after its head, as slices of the bytes read (never copied), then
/// its end. Chunked framing is strict, as llhttp's: CRLF line ends only, no whitespace, at most 15 hex
/// digits; trailers are checked and dropped.
struct HTTP1BodyReader {
    enum Framing: Equatable {
        case fixed(Int)
        case chunked
        /// Until the connection closes (a response only).
        case untilClose
    }

    enum Event {
        case body(ByteBuffer)
        case end
    }

    enum Failure: Error {
        case badChunk
        case badTrailer
        case trailersTooLarge
    }

    /// A chunk-size line, with its extensions.
    static let maxChunkLineBytes = 4096

    private enum State {
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case done
    }

    private var state: State
    private var lines = HTTP1LineReader()
    private var trailerBytes = 0
    private let maxTrailerBytes: Int
    /// Trailer lines must end with CRLF (a request's, as llhttp holds); otherwise a bare LF ends one too.
    private let strictTrailers: Bool

    init(_ framing: Framing, maxTrailerBytes: Int, strictTrailers: Bool) {
        switch framing {
        case .fixed(let length): state = .fixed(remaining: length)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
        self.maxTrailerBytes = maxTrailerBytes
        self.strictTrailers = strictTrailers
    }

    var isDone: Bool {
        if case .done = state { return true }
        return false
    }

    /// The connection closed: true if that ends the body (one delimited by the close), false if the body
    /// was cut short.
    mutating func inputClosed() -> Bool {
        if case .untilClose = state {
            state = .done
            return true
        }
        return isDone
    }

    /// The next event in `buffer`, consuming what it used; nil when `buffer` holds no more of one.
    mutating func next(_ buffer: inout ByteBuffer) throws(Failure) -> Event? {
        while true {
            switch state {
            case .fixed(let remaining):
                if remaining == 0 {
                    state = .done
                    return .end
                }
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
                if lines.partial.isEmpty, let (inPlace, used) = try Self.chunkLine(buffer) {
                    buffer.moveReaderIndex(forwardBy: used)
                    size = inPlace
                } else {
                    guard let line = try chunkFramingLine(&buffer, limit: Self.maxChunkLineBytes) else { return nil }
                    guard let parsed = HTTP1Syntax.chunkSize(line) else { throw .badChunk }
                    size = parsed
                }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkDataEnd:
                if lines.partial.isEmpty, buffer.readableBytes >= 2,
                    buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A
                {
                    buffer.moveReaderIndex(forwardBy: 2)
                } else {
                    guard let line = try chunkFramingLine(&buffer, limit: 1) else { return nil }
                    guard line.isEmpty else { throw .badChunk }
                }
                state = .chunkSize
            case .trailers:
                let line: ArraySlice<UInt8>
                do throws(HTTP1LineReader.Failure) {
                    guard
                        let taken = try lines.take(
                            &buffer, limit: maxTrailerBytes - trailerBytes, requireCR: strictTrailers)
                    else { return nil }
                    line = taken
                } catch {
                    throw error == .tooLong ? .trailersTooLarge : .badTrailer
                }
                trailerBytes += line.count + 2
                if line.isEmpty {
                    state = .done
                    return .end
                }
                guard HTTP1Syntax.field(line) != nil else { throw .badTrailer }
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .done:
                return nil
            }
        }
    }

    private mutating func chunkFramingLine(_ buffer: inout ByteBuffer, limit: Int) throws(Failure) -> ArraySlice<UInt8>?
    {
        do throws(HTTP1LineReader.Failure) {
            return try lines.take(&buffer, limit: limit, requireCR: true)
        } catch {
            throw .badChunk
        }
    }

    /// A size line whole at the start of `buffer`: its size and the bytes it takes; nil if unfinished.
    private static func chunkLine(_ buffer: ByteBuffer) throws(Failure) -> (Int, Int)? {
        let found: (Int, Int)?? = buffer.withUnsafeReadableBytes { raw in
            let scan = min(raw.count, maxChunkLineBytes + 1)
            guard let lf = raw[0..<scan].firstIndex(of: UInt8(ascii: "\n")) else {
                return scan > maxChunkLineBytes ? .some(nil) : nil
            }
            guard lf > 0, raw[lf - 1] == UInt8(ascii: "\r") else { return .some(nil) }
            let line = raw[0..<(lf - 1)]
            guard !line.contains(UInt8(ascii: "\r")), let size = HTTP1Syntax.chunkSize(line) else { return .some(nil) }
            return (size, lf + 1)
        }
        switch found {
        case .none: return nil
        case .some(.none): throw .badChunk
        case .some(.some(let parsed)): return parsed
        }
    }
}

/// Where the bytes of a head go, in a buffer measured for them beforehand (``ByteBuffer/writeHead``).
/// ByteBuffer's own writes check capacity and exclusivity on every call, and a head is some thirty
/// calls; this checks once, and every copy stays within the measured bytes.
struct HeadCursor {
    private var next: UnsafeMutableRawPointer
    private let end: UnsafeMutableRawPointer

    fileprivate init(_ bytes: UnsafeMutableRawBufferPointer) {
        next = bytes.baseAddress!
        end = next + bytes.count
    }

    fileprivate var isFull: Bool { next == end }

    mutating func put(_ text: StaticString) {
        copy(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func put(_ text: String) {
        var text = text
        text.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    mutating func put(_ bytes: ByteBuffer) {
        bytes.withUnsafeReadableBytes { copy($0) }
    }

    mutating func put(_ byte: UInt8) {
        precondition(next < end, "a head longer than measured")
        next.storeBytes(of: byte, as: UInt8.self)
        next += 1
    }

    private mutating func copy(_ bytes: UnsafeRawBufferPointer) {
        precondition(end - next >= bytes.count, "a head longer than measured")
        if let base = bytes.baseAddress { next.copyMemory(from: base, byteCount: bytes.count) }
        next += bytes.count
    }
}

extension ByteBuffer {
    /// Writes a head (or a chunk's framing with its bytes) of exactly `length` bytes through `body`.
    mutating func writeHead(length: Int, _ body: (inout HeadCursor) -> Void) {
        guard length > 0 else { return }
        writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
            var cursor = HeadCursor(UnsafeMutableRawBufferPointer(rebasing: raw[..<length]))
            body(&cursor)
            precondition(cursor.isFull, "a head shorter than measured")
            return length
        }
    }
}
