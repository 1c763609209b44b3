/// Errors from ``JSONReader``, with the byte offset where reading stopped.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }

    /// Client text as it may appear in an error message: at most 64 characters, control characters
    /// shown as U+FFFD, so an error can neither grow with the input nor carry terminal escapes.
    public static func excerpt(_ text: String, limit: Int = 64) -> String {
        var out = String.UnicodeScalarView()
        for (i, scalar) in text.unicodeScalars.enumerated() {
            if i == limit {
                out.append("…")
                break
            }
            out.append(scalar.properties.generalCategory == .control ? "\u{FFFD}" : scalar)
        }
        return String(out)
    }
}

/// A strict RFC 8259 reader over bytes.
///
/// Besides the value tree it can report where a top-level member's value sits in the input, so that
/// the gateway can rewrite one field (the model name) and forward every other byte untouched.
public struct JSONReader {
    /// Deep nesting is the classic way to exhaust a recursive parser's stack; bodies are bounded in size,
    /// and this bounds them in depth.
    public static let maxDepth = 128

    /// The document, valid for the duration of one `parse` call (which owns the array it points into).
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index: Int = 0
    /// Whether a string that is not valid UTF-8 is an error (a client's document) or is repaired with
    /// U+FFFD (an upstream's, whose usage is still worth reading).
    private var strictUTF8 = false

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Runs `body` on a reader over `bytes`. The reader reads through a pointer, not the array, which
    /// skips the array's per-byte checks (about 6% on a streamed event's JSON).
    private static func reading<T>(
        _ bytes: [UInt8], strictUTF8: Bool = false, _ body: (inout JSONReader) throws(JSONError) -> T
    ) throws(JSONError) -> T {
        let result: Result<T, JSONError> = bytes.withUnsafeBufferPointer { buffer in
            var reader = JSONReader(buffer)
            reader.strictUTF8 = strictUTF8
            do throws(JSONError) {
                return .success(try body(&reader))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Parses a whole document. With `strictUTF8`, a string that is not valid UTF-8 is an error.
    public static func parse(_ bytes: [UInt8], strictUTF8: Bool = false) throws(JSONError) -> JSONValue {
        try reading(bytes, strictUTF8: strictUTF8) { (reader: inout JSONReader) throws(JSONError) -> JSONValue in
            reader.skipWhitespace()
            let value = try reader.readValue(depth: 0)
            reader.skipWhitespace()
            guard reader.index == bytes.count else { throw reader.error("trailing characters") }
            return value
        }
    }

    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    /// Parses a document whose top level is an object and returns its members along with the byte range
    /// of each member's value.
    public static func parseTopLevelObject(
        _ bytes: [UInt8]
    ) throws(JSONError) -> (value: JSONValue, spans: MemberSpans) {
        // A client's request: its strings must be valid UTF-8.
        try reading(bytes, strictUTF8: true) {
            (reader: inout JSONReader) throws(JSONError) -> (value: JSONValue, spans: MemberSpans) in
            reader.skipWhitespace()
            guard reader.peek() == UInt8(ascii: "{") else { throw reader.error("expected a JSON object") }
            var spans = MemberSpans()
            var duplicate: (key: String, offset: Int)?
            let value = try reader.readObject(depth: 0) { key, range in
                // A repeated member is refused: readers differ on which one wins (the gateway would
                // route and bill one model while the upstream serves another).
                if !spans.insert(key, range), duplicate == nil {
                    duplicate = (key, range.lowerBound)
                }
            }
            if let duplicate {
                throw JSONError(
                    offset: duplicate.offset, reason: "duplicate member '\(JSONError.excerpt(duplicate.key))'")
            }
            reader.skipWhitespace()
            guard reader.index == bytes.count else { throw reader.error("trailing characters") }
            return (value, spans)
        }
    }

    private func error(_ reason: String) -> JSONError { JSONError(offset: index, reason: reason) }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func readValue(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        guard let byte = peek() else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try readObject(depth: depth, onMember: nil)
        case UInt8(ascii: "["): return try readArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try readString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try readNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("unexpected end of input") }
        let matches = literal.withUTF8Buffer { lit in
            (0..<count).allSatisfy { [bytes, index] in bytes[index + $0] == lit[$0] }
        }
        guard matches else { throw error("invalid literal") }
        index += count
    }

    private mutating func readObject(
        depth: Int,
        onMember: ((String, Range<Int>) -> Void)?
    ) throws(JSONError) -> JSONValue {
        index += 1  // {
        var members: [(String, JSONValue)] = []
        // Most objects in API traffic have a handful of members; one allocation instead of growing
        // through 1, 2, 4 and 8.
        members.reserveCapacity(8)
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try readString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            let start = index
            let value = try readValue(depth: depth + 1)
            onMember?(key, start..<index)
            members.append((key, value))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func readArray(depth: Int) throws(JSONError) -> JSONValue {
        index += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try readValue(depth: depth + 1))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(items)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func readNumber() throws(JSONError) -> String {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), first >= 0x30, first <= 0x39 else { throw error("invalid number") }
        if first == 0x30 {
            index += 1
        } else {
            while let d = peek(), d >= 0x30, d <= 0x39 { index += 1 }
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let d = peek(), d >= 0x30, d <= 0x39 else { throw error("invalid fraction") }
            while let d = peek(), d >= 0x30, d <= 0x39 { index += 1 }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let d = peek(), d >= 0x30, d <= 0x39 else { throw error("invalid exponent") }
            while let d = peek(), d >= 0x30, d <= 0x39 { index += 1 }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    private mutating func readHex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// The string of these bytes: validated when strict, repaired otherwise.
    /// `ascii`: the caller saw no byte above 0x7F, so the bytes are valid UTF-8 as they are.
    private func string(_ raw: UnsafeBufferPointer<UInt8>, ascii: Bool = false) throws(JSONError) -> String {
        // `String(decoding:)` is specialized for bytes; `String(validating:)` is generic and was a sixth of
        // a streamed request's instructions. Decoding repairs bad UTF-8 with U+FFFD, which changes the
        // bytes: the input was valid exactly when the result's UTF-8 equals it.
        var decoded = String(decoding: raw, as: UTF8.self)
        guard strictUTF8 && !ascii else { return decoded }
        guard decoded.withUTF8({ $0.elementsEqual(raw) }) else { throw error("invalid UTF-8 in string") }
        return decoded
    }

    private mutating func readString() throws(JSONError) -> String {
        index += 1  // opening quote
        let start = index
        var high: UInt8 = 0
        // Fast path: no escapes.
        while index < bytes.count {
            let c = bytes[index]
            high |= c
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try string(raw, ascii: high < 0x80)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw error("control character in string") }
            index += 1
        }
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let c = bytes[index]
            switch c {
            case UInt8(ascii: "\""):
                index += 1
                return try out.withUnsafeBufferPointer { (raw) throws(JSONError) -> String in try string(raw) }
            case UInt8(ascii: "\\"):
                index += 1
                guard let e = peek() else { throw error("unexpected end of input") }
                index += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try readHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must pair with a low one; a lone one becomes U+FFFD.
                        if index + 6 <= bytes.count, bytes[index] == 0x5C, bytes[index + 1] == UInt8(ascii: "u") {
                            let save = index
                            index += 2
                            let low = try readHex4()
                            if (0xDC00...0xDFFF).contains(low) {
                                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                index = save
                                scalar = 0xFFFD
                            }
                        } else {
                            scalar = 0xFFFD
                        }
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        scalar = 0xFFFD
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default: throw error("invalid escape")
                }
            default:
                if c < 0x20 { throw error("control character in string") }
                out.append(c)
                index += 1
            }
        }
        throw error("unterminated string")
    }
}

/// Where each top-level member's value lies in the document, in document order.
///
/// An array, not a dictionary: an upstream's streamed event has a handful of members, and hashing each
/// key cost half of the event's parse.
public struct MemberSpans: Sendable {
    public private(set) var members: [(key: String, span: Range<Int>)] = []
    /// The keys seen, once there are too many members to compare each new one with all before it.
    private var keys: Set<String>?

    static let linearLimit = 16

    public init() {}

    public var count: Int { members.count }

    public subscript(key: String) -> Range<Int>? {
        members.first { $0.key == key }?.span
    }

    /// Adds a member; false if the key was already there (the first span stays).
    mutating func insert(_ key: String, _ span: Range<Int>) -> Bool {
        if keys == nil && members.count >= Self.linearLimit { keys = Set(members.map(\.key)) }
        if keys != nil {
            guard keys!.insert(key).inserted else { return false }
        } else if members.contains(where: { $0.key == key }) {
            return false
        }
        members.append((key, span))
        return true
    }
}
