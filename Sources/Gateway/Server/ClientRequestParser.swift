import HTTPTypes
import NIOCore
import NIOHTTP1

/// HTTP/1.1 request framing for a client connection: each request's head as Swift HTTP Types, then its
/// body as slices of the bytes read (never copied), then its end.
///
/// Every request passes through here, so it parses a head where it lies in the read when it can, and
/// builds the request's fields directly (NIO's decoder built a head of its own that was converted
/// again, path through `URLComponents`). It is as strict as llhttp where framing could be ambiguous:
/// `Content-Length` with `Transfer-Encoding`, a repeated or listed `Content-Length`, a coding other
/// than a final `chunked`, obs-fold, control bytes and bare LFs are errors; errors are NIO's
/// `HTTPParserError`, which the connection answers in the API's format.
struct ClientRequestParser {
    struct Head {
        var request: HTTPRequest
        /// The connection may carry another request after this one's response.
        var keepAlive: Bool
        var isHTTP10: Bool
        /// The client waits for a `100 Continue` before it sends the body (`Expect: 100-continue`).
        var expectsContinue = false
    }

    enum Event {
        case head(Head)
        case body(ByteBuffer)
        case end
    }

    /// One header line (or the request line), and the whole head.
    static let maxLineBytes = 16 << 10
    static let maxHeadBytes = 64 << 10
    static let maxFields = 200

    private var lines = HTTP1LineReader()
    /// Set from the end of a head to the end of its body.
    private var body: HTTP1BodyReader?
    private var head: Head?
    private var headBytes = 0

    /// Bytes of a request head have arrived and the head is not complete.
    var isInHead: Bool { body == nil && (head != nil || !lines.partial.isEmpty) }

    /// The next event in `buffer`, consuming what it used; nil when `buffer` holds no more of one.
    mutating func next(_ buffer: inout ByteBuffer) throws(HTTPParserError) -> Event? {
        if body != nil {
            do throws(HTTP1BodyReader.Failure) {
                switch try body!.next(&buffer) {
                case .body(let slice): return .body(slice)
                case .end:
                    body = nil
                    return .end
                case nil: return nil
                }
            } catch {
                throw error == .badChunk
                    ? .invalidChunkSize : error == .badTrailer ? .invalidHeaderToken : .headerOverflow
            }
        }
        while true {
            // The usual case, a whole head in this read, is copied once and split where it lies. Only
            // from a request's start: within a head, its blank line may be the first bytes read.
            if head == nil, lines.partial.isEmpty,
                let block = Self.wholeHead(buffer, limit: Self.maxHeadBytes - headBytes)
            {
                let bytes = buffer.readBytes(length: block)!
                var start = 0
                while let lf = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    guard lf > start, bytes[lf - 1] == UInt8(ascii: "\r") else { throw .lfExpected }
                    let line = bytes[start..<(lf - 1)]
                    start = lf + 1
                    // The limit counts the CR, as the line reader's does.
                    guard line.count < min(Self.maxLineBytes, Self.maxHeadBytes - headBytes) else {
                        throw .headerOverflow
                    }
                    if line.contains(UInt8(ascii: "\r")) { throw .lfExpected }
                    if let head = try headLine(line) { return .head(head) }
                }
                continue
            }
            let line: ArraySlice<UInt8>
            do throws(HTTP1LineReader.Failure) {
                let limit = min(Self.maxLineBytes, Self.maxHeadBytes - headBytes)
                guard let taken = try lines.take(&buffer, limit: limit, requireCR: true) else { return nil }
                line = taken
            } catch {
                throw error == .tooLong ? .headerOverflow : .lfExpected
            }
            if let head = try headLine(line) { return .head(head) }
        }
    }

    /// The length of the head at the start of `buffer` through its blank line, if all of it is there and
    /// within `limit` bytes.
    private static func wholeHead(_ buffer: ByteBuffer, limit: Int) -> Int? {
        buffer.withUnsafeReadableBytes { raw in
            let scan = min(raw.count, limit + 2)
            var i = 3
            while i < scan {
                // A CRLFCRLF ends the head: look at each LF and the three bytes before it.
                if raw[i] == UInt8(ascii: "\n"), raw[i - 1] == UInt8(ascii: "\r"), raw[i - 2] == UInt8(ascii: "\n"),
                    raw[i - 3] == UInt8(ascii: "\r")
                {
                    return i + 1
                }
                i += 1
            }
            return nil
        }
    }

    /// One line of a head, without its CRLF; the head once its blank line ends it.
    private mutating func headLine(_ line: ArraySlice<UInt8>) throws(HTTPParserError) -> Head? {
        guard head != nil else {
            // Empty lines before a request line are skipped (RFC 9112 2.2).
            if !line.isEmpty { head = try Self.requestLine(line) }
            headBytes = line.count + 2
            return nil
        }
        headBytes += line.count + 2
        if line.isEmpty { return try endOfHead() }
        guard head!.request.headerFields.count < Self.maxFields else { throw .headerOverflow }
        guard let (rawName, rawValue) = HTTP1Syntax.field(line),
            let name = HTTPField.Name(String(decoding: rawName, as: UTF8.self))
        else { throw .invalidHeaderToken }
        let value = String(decoding: rawValue, as: UTF8.self)
        // The first Host is the request's authority, as in HTTP/2; later ones stay fields.
        if name.canonicalName == "host" && head!.request.authority == nil {
            head!.request.authority = value
        } else {
            head!.request.headerFields.append(HTTPField(name: name, value: value))
        }
        return nil
    }

    /// "METHOD SP request-target SP HTTP/1.x"
    private static func requestLine(_ line: ArraySlice<UInt8>) throws(HTTPParserError) -> Head {
        guard let space = line.firstIndex(of: UInt8(ascii: " ")), space > line.startIndex,
            line[line.startIndex..<space].allSatisfy(HTTP1Syntax.isTokenByte),
            let method = HTTPRequest.Method(String(decoding: line[line.startIndex..<space], as: UTF8.self))
        else { throw .invalidMethod }
        let rest = line[(space + 1)...]
        guard let secondSpace = rest.firstIndex(of: UInt8(ascii: " ")) else { throw .invalidVersion }
        let target = rest[rest.startIndex..<secondSpace]
        let version = rest[(secondSpace + 1)...]
        guard version.count == 8, version.starts(with: "HTTP/1.".utf8),
            version.last == UInt8(ascii: "1") || version.last == UInt8(ascii: "0")
        else { throw .invalidVersion }
        // Visible bytes only: no whitespace or control bytes; bytes past ASCII pass, as llhttp lets them.
        guard !target.isEmpty, target.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { throw .invalidURL }
        let request = HTTPRequest(
            method: method, scheme: "http", authority: nil, path: Self.path(String(decoding: target, as: UTF8.self)))
        let isHTTP10 = version.last == UInt8(ascii: "0")
        return Head(request: request, keepAlive: !isHTTP10, isHTTP10: isHTTP10)
    }

    /// The origin-form path of a request target: an absolute-form target ("http://host/p?q") loses its
    /// scheme and authority; every other form stays as it came.
    private static func path(_ target: String) -> String {
        let bytes = target.utf8
        // An absolute-form target starts with a scheme (a letter, then letters, digits, "+", "-" or
        // ".") and "://"; anything else stays as it came.
        guard let first = bytes.first, first | 0x20 >= UInt8(ascii: "a"), first | 0x20 <= UInt8(ascii: "z"),
            let colon = bytes.firstIndex(of: UInt8(ascii: ":")), bytes[colon...].starts(with: "://".utf8),
            bytes[..<colon].allSatisfy(Self.isSchemeByte)
        else { return target }
        let authority = bytes[bytes.index(colon, offsetBy: 3)...]
        guard let slash = authority.firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") }) else {
            return "/"
        }
        let rest = Substring(target.utf8[slash...])
        return rest.first == "?" ? "/" + rest : String(rest)
    }

    private static func isSchemeByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."):
            true
        default: false
        }
    }

    /// Decides the body's framing and whether the connection stays open after this request.
    private mutating func endOfHead() throws(HTTPParserError) -> Head {
        var done = head!
        head = nil
        headBytes = 0
        let fields = done.request.headerFields
        let lengths = fields[values: .contentLength]
        let codings = fields[values: .transferEncoding]
        let framing: HTTP1BodyReader.Framing
        if !codings.isEmpty {
            // Presence decides, not the values: an empty field is still a claim about the framing.
            guard lengths.isEmpty else { throw .unexpectedContentLength }
            // HTTP/1.0 has no transfer codings; in HTTP/1.1 a request's last coding must be chunked.
            guard !done.isHTTP10, codings.count == 1, codings[0].lowercased() == "chunked" else {
                throw .invalidTransferEncoding
            }
            framing = .chunked
        } else if !lengths.isEmpty {
            // One field with one number: a repeat or a list is refused, as llhttp does.
            guard lengths.count == 1, let length = HTTP1Syntax.contentLength(Substring(lengths[0])) else {
                throw .invalidContentLength
            }
            framing = .fixed(length)
        } else {
            framing = .fixed(0)
        }
        var close = false
        var keepAlive = false
        for value in fields[values: .connection] {
            for option in value.split(separator: ",") {
                close = close || Self.isOption(option, "close")
                keepAlive = keepAlive || Self.isOption(option, "keep-alive")
            }
        }
        // Close wins over keep-alive, as in llhttp.
        done.keepAlive = !close && (keepAlive || !done.isHTTP10)
        lines.reset()
        body = HTTP1BodyReader(framing, maxTrailerBytes: Self.maxHeadBytes, strictTrailers: true)
        if !done.isHTTP10, framing != .fixed(0), let expect = fields.combined(.expect) {
            done.expectsContinue = Self.isOption(expect[...], "100-continue")
        }
        return done
    }
}

extension ClientRequestParser {
    /// One comma-separated option of a `Connection` field, compared without case or surrounding
    /// whitespace; `lowercased` is the option in lower case.
    static func isOption(_ option: Substring, _ lowercased: String) -> Bool {
        var bytes = option.utf8[...]
        while let b = bytes.first, b == 0x20 || b == 0x09 { bytes.removeFirst() }
        while let b = bytes.last, b == 0x20 || b == 0x09 { bytes.removeLast() }
        return bytes.elementsEqual(lowercased.utf8) { $0 | 0x20 == $1 | 0x20 }
    }
}

extension HTTPParserError {
    /// A transfer coding a request may not have.
    static var invalidTransferEncoding: HTTPParserError { .invalidConstant }
}
