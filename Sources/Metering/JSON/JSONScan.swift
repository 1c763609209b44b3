/// Reads values out of a JSON document where they lie, without building a ``JSONValue`` tree.
///
/// A streamed response is hundreds of small JSON events of which the meter needs a few members; building
/// and freeing each event's tree was most of the meter's cost. `validate` checks the whole document
/// once, as ``JSONReader`` would (upstream strings are not held to strict UTF-8); the accessors then
/// walk ranges of it. Member lookup takes the last of repeated names, as ``JSONValue`` does, and a value
/// of the wrong type reads as absent.
struct JSONScan {
    let bytes: UnsafeBufferPointer<UInt8>

    /// The members and elements of the containers `validate` met at the shallowest levels, so that the
    /// walks there do not scan their values again (a chunk's `choices` were scanned four times). A
    /// container's own entry has an empty value range and comes before its members.
    private var tape: [Entry] = []
    private struct Entry {
        let container: Int
        let key: Range<Int>
        let value: Range<Int>
    }
    /// Containers this deep or deeper are walked by scanning.
    static let tapeDepth = 4
    /// Some member name has an escape (unknown until `validate`): only then can a name longer than the
    /// one looked for still equal it.
    private var keysEscaped = true

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// The range of the one value that fills `range` (whitespace around it allowed), if it is valid JSON.
    mutating func validate(_ range: Range<Int>) -> Range<Int>? {
        tape.removeAll(keepingCapacity: true)
        keysEscaped = false
        // A chunk's shallow containers hold about a dozen members: one allocation, not five.
        tape.reserveCapacity(16)
        let start = skipSpace(range.lowerBound, range.upperBound)
        guard let end = skipValue(start, range.upperBound, depth: 0),
            skipSpace(end, range.upperBound) == range.upperBound
        else { return nil }
        return start..<end
    }

    private func skipSpace(_ i: Int, _ end: Int) -> Int {
        var i = i
        while i < end {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    /// Where the value starting at `i` ends, or nil where it is not valid JSON.
    private mutating func skipValue(_ i: Int, _ end: Int, depth: Int) -> Int? {
        guard i < end, depth < JSONReader.maxDepth else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "\""): return skipString(i, end)
        case UInt8(ascii: "{"): return skipContainer(i, end, depth: depth, close: UInt8(ascii: "}"), keyed: true)
        case UInt8(ascii: "["): return skipContainer(i, end, depth: depth, close: UInt8(ascii: "]"), keyed: false)
        case UInt8(ascii: "t"): return literal("true", i, end)
        case UInt8(ascii: "f"): return literal("false", i, end)
        case UInt8(ascii: "n"): return literal("null", i, end)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return skipNumber(i, end)
        default: return nil
        }
    }

    private func literal(_ text: StaticString, _ i: Int, _ end: Int) -> Int? {
        let count = text.utf8CodeUnitCount
        guard i + count <= end else { return nil }
        let matches = text.withUTF8Buffer { lit in (0..<count).allSatisfy { bytes[i + $0] == lit[$0] } }
        return matches ? i + count : nil
    }

    private mutating func skipContainer(_ i: Int, _ end: Int, depth: Int, close: UInt8, keyed: Bool) -> Int? {
        let container = i
        let taped = depth < Self.tapeDepth
        if taped { tape.append(Entry(container: container, key: 0..<0, value: container..<container)) }
        var i = skipSpace(i + 1, end)
        if i < end && bytes[i] == close { return i + 1 }
        while true {
            var key = 0..<0
            if keyed {
                var escaped = false
                guard i < end, bytes[i] == UInt8(ascii: "\""), let keyEnd = skipString(i, end, escaped: &escaped)
                else { return nil }
                if escaped { keysEscaped = true }
                key = i..<keyEnd
                i = skipSpace(keyEnd, end)
                guard i < end, bytes[i] == UInt8(ascii: ":") else { return nil }
                i = skipSpace(i + 1, end)
            }
            guard let valueEnd = skipValue(i, end, depth: depth + 1) else { return nil }
            if taped { tape.append(Entry(container: container, key: key, value: i..<valueEnd)) }
            i = skipSpace(valueEnd, end)
            guard i < end else { return nil }
            if bytes[i] == close { return i + 1 }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i = skipSpace(i + 1, end)
        }
    }

    /// Calls `body` with each taped member of the container at `start` and returns true, or returns
    /// false when that container was not taped.
    private func taped(_ start: Int, _ body: (Entry) -> Void) -> Bool {
        guard let first = tape.firstIndex(where: { $0.container == start && $0.value.isEmpty }) else { return false }
        for entry in tape[(first + 1)...] where entry.container == start { body(entry) }
        return true
    }

    private func skipString(_ i: Int, _ end: Int) -> Int? {
        var escaped = false
        return skipString(i, end, escaped: &escaped)
    }

    /// `escaped` is set when the string has an escape.
    private func skipString(_ i: Int, _ end: Int, escaped: inout Bool) -> Int? {
        var i = i + 1
        while true {
            i = ByteScan.stringSpecial(bytes, i, end)
            guard i < end else { return nil }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { return i + 1 }
            if c < 0x20 { return nil }
            // A backslash.
            escaped = true
            guard i + 1 < end else { return nil }
            switch bytes[i + 1] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                i += 2
            case UInt8(ascii: "u"):
                // Surrogate pairing is checked when the string is decoded, as the reader does.
                guard i + 6 <= end, (i + 2..<i + 6).allSatisfy({ Self.isHex(bytes[$0]) }) else { return nil }
                i += 6
            default: return nil
            }
        }
    }

    private static func isHex(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    private func skipNumber(_ i: Int, _ end: Int) -> Int? {
        var i = i
        func digit(_ at: Int) -> Bool { at < end && bytes[at] >= 0x30 && bytes[at] <= 0x39 }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return nil }
        if bytes[i] == 0x30 {
            i += 1
        } else {
            while digit(i) { i += 1 }
        }
        if i < end && bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        if i < end && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < end && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        return i
    }

    // MARK: Reading a validated document

    /// Where the value at `i` ends, in a document already validated: only strings and brackets are
    /// looked at, so a walk to the members it needs does not check every byte again.
    private func skipValidated(_ i: Int, _ end: Int) -> Int {
        switch bytes[i] {
        case UInt8(ascii: "\""):
            return skipValidatedString(i, end)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var j = i
            while true {
                switch bytes[j] {
                case UInt8(ascii: "\""):
                    j = skipValidatedString(j, end)
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return j + 1 }
                default:
                    break
                }
                j += 1
            }
        default:
            // A number or a literal: up to the next separator or bracket.
            var j = i + 1
            while j < end {
                switch bytes[j] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D: return j
                default: j += 1
                }
            }
            return j
        }
    }

    /// The end of a validated string (after its closing quote).
    private func skipValidatedString(_ i: Int, _ end: Int) -> Int {
        var j = i + 1
        while true {
            j = ByteScan.stringSpecial(bytes, j, end)
            // Validated: a quote ends it; anything else found is a backslash, whose escaped byte (or the
            // first of \u's four hex digits) is not special.
            if bytes[j] == UInt8(ascii: "\"") { return j + 1 }
            j += 2
        }
    }

    /// Each member of the object `value` (nothing if it is not an object): the key's range including its
    /// quotes, and the value's range.
    func forEachMember(_ value: Range<Int>, _ body: (Range<Int>, Range<Int>) -> Void) {
        let end = value.upperBound
        guard bytes[value.lowerBound] == UInt8(ascii: "{") else { return }
        if taped(value.lowerBound, { body($0.key, $0.value) }) { return }
        var i = skipSpace(value.lowerBound + 1, end)
        if bytes[i] == UInt8(ascii: "}") { return }
        while i < end {
            let keyEnd = skipValidatedString(i, end)
            let valueStart = skipSpace(skipSpace(keyEnd, end) + 1, end)
            let valueEnd = skipValidated(valueStart, end)
            body(i..<keyEnd, valueStart..<valueEnd)
            i = skipSpace(valueEnd, end)
            guard bytes[i] == UInt8(ascii: ",") else { return }
            i = skipSpace(i + 1, end)
        }
    }

    /// Each element of the array `value` (nothing if it is not an array).
    func forEachElement(_ value: Range<Int>, _ body: (Range<Int>) -> Void) {
        let end = value.upperBound
        guard bytes[value.lowerBound] == UInt8(ascii: "[") else { return }
        if taped(value.lowerBound, { body($0.value) }) { return }
        var i = skipSpace(value.lowerBound + 1, end)
        if bytes[i] == UInt8(ascii: "]") { return }
        while i < end {
            let elementEnd = skipValidated(i, end)
            body(i..<elementEnd)
            i = skipSpace(elementEnd, end)
            guard bytes[i] == UInt8(ascii: ",") else { return }
            i = skipSpace(i + 1, end)
        }
    }

    /// The last member named `key` of the object `value`.
    func member(_ value: Range<Int>, _ key: StaticString) -> Range<Int>? {
        var found: Range<Int>?
        forEachMember(value) { name, member in
            if keyEquals(name, key) { found = member }
        }
        return found
    }

    /// The last members named `a`, `b`, `c` and `d` of the object `value`, in one walk (nil for a name
    /// not given or not there).
    func members(
        _ value: Range<Int>, _ a: StaticString, _ b: StaticString, _ c: StaticString? = nil, _ d: StaticString? = nil
    ) -> (Range<Int>?, Range<Int>?, Range<Int>?, Range<Int>?) {
        var found: (Range<Int>?, Range<Int>?, Range<Int>?, Range<Int>?) = (nil, nil, nil, nil)
        forEachMember(value) { name, member in
            if keyEquals(name, a) {
                found.0 = member
            } else if keyEquals(name, b) {
                found.1 = member
            } else if let c, keyEquals(name, c) {
                found.2 = member
            } else if let d, keyEquals(name, d) {
                found.3 = member
            }
        }
        return found
    }

    /// Whether the quoted key at `name` reads as `key` (escapes decoded).
    func keyEquals(_ name: Range<Int>, _ key: StaticString) -> Bool {
        let start = name.lowerBound + 1
        let count = name.count - 2
        let n = key.utf8CodeUnitCount
        if count == n {
            let same = key.withUTF8Buffer { k in
                var i = 0
                while i < n && bytes[start + i] == k[i] { i += 1 }
                return i == n
            }
            if same { return true }
        }
        // An escape takes at least two bytes for one character, so only a longer key with a backslash
        // can still read as `key`.
        guard count > n, keysEscaped, ByteScan.stringSpecial(bytes, start, start + count) < start + count else {
            return false
        }
        return string(name) == key.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
    }

    func isNull(_ value: Range<Int>) -> Bool { bytes[value.lowerBound] == UInt8(ascii: "n") }

    func isEmptyArray(_ value: Range<Int>) -> Bool {
        bytes[value.lowerBound] == UInt8(ascii: "[")
            && bytes[skipSpace(value.lowerBound + 1, value.upperBound)] == UInt8(ascii: "]")
    }

    /// The string `value`, decoded as the reader decodes an upstream's (bad UTF-8 becomes U+FFFD).
    func string(_ value: Range<Int>) -> String? {
        guard bytes[value.lowerBound] == UInt8(ascii: "\"") else { return nil }
        let raw = value.lowerBound + 1..<value.upperBound - 1
        if !bytes[raw].contains(UInt8(ascii: "\\")) {
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[raw]), as: UTF8.self)
        }
        return (try? JSONReader.parse(Array(bytes[value])))?.stringValue
    }

    /// The integer `value`: nil for fractions, exponents, other types or values outside Int, as
    /// ``JSONValue/intValue``.
    func int(_ value: Range<Int>) -> Int? {
        var i = value.lowerBound
        let negative = bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        guard i < value.upperBound else { return nil }
        var result = 0
        while i < value.upperBound {
            let c = bytes[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (times, o1) = result.multipliedReportingOverflow(by: 10)
            let (next, o2) =
                negative
                ? times.subtractingReportingOverflow(Int(c - 0x30)) : times.addingReportingOverflow(Int(c - 0x30))
            guard !o1 && !o2 else { return nil }
            result = next
            i += 1
        }
        return result
    }

    /// The value as a tree, for the rare member that needs one (a usage object).
    func tree(_ value: Range<Int>) -> JSONValue? {
        try? JSONReader.parse(Array(bytes[value]))
    }
}
