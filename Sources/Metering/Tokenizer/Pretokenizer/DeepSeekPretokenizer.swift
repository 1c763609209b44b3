/// DeepSeek V3's pre-tokenizer, by hand (docs/tokenizer.md): a Hugging Face `Sequence` of three
/// `Split` steps, each isolating its matches, with the text between matches kept as pieces too:
///
/// 1. `\p{N}{1,3}`;
/// 2. `[一-龥\u3040-ゟ゠-ヿ]+` (CJK ideographs U+4E00–U+9FA5, hiragana and katakana);
/// 3. `[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
///    ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
///
/// Each step runs on every piece of the one before, as a string of its own: a piece's end is the end
/// of the text to it (`\s+(?!\S)` takes two spaces before an ideograph whole). Step 3 leaves numbers
/// whole (no alternative matches a digit) and splits only the punctuation, symbols and unassigned
/// code points out of step 2's kana runs. So the text is cut into stretches of numbers, CJK and the
/// rest first, and step 3 runs within each. Positions are byte offsets into valid UTF-8; every scan
/// goes forward, so splitting is linear.
struct DeepSeekPretokenizer {
    let text: UnsafeBufferPointer<UInt8>
    let classes: CharacterClassTable

    @inline(__always)
    func info(at i: Int) -> (flags: CharacterClass, length: Int, value: UInt32) {
        let b = text[i]
        if b < 0x80 { return (CharacterClass(rawValue: classes.ascii[Int(b)]), 1, UInt32(b)) }
        let (value, length) = text.scalar(at: i)
        return (CharacterClass(rawValue: classes.flags(value)), length, value)
    }

    @inline(__always)
    static func isCJK(_ v: UInt32) -> Bool { (0x4E00...0x9FA5).contains(v) || (0x3040...0x30FF).contains(v) }

    /// Calls `body` with the start and end of each piece of `text[start..<end]`, in order.
    @inline(__always)
    func forEachPiece(from start: Int, to end: Int, _ body: (_ start: Int, _ end: Int) -> Void) {
        var i = start
        while i < end {
            let j = pieceEnd(from: i, end: end)
            body(i, j)
            i = j
        }
    }

    /// The end of the piece that starts at `i` (a piece boundary) in `text[..<end]`. Steps 1 and 2 cut
    /// where a number begins or ends and where CJK begins or ends, so the stretch a piece lies in
    /// ends at the first such change (``atStretchEnd(_:end:cjk:)``), which every scan below checks
    /// as it goes: nothing is read twice.
    @inline(__always)
    func pieceEnd(from i: Int, end: Int) -> Int {
        let first = info(at: i)
        var j = i + first.length
        if first.flags.contains(.number) {
            // Step 1: up to three numbers; step 3 matches nothing in them.
            var taken = 1
            while taken < 3 && j < end {
                let next = info(at: j)
                guard next.flags.contains(.number) else { break }
                j += next.length
                taken += 1
            }
            return j
        }
        let cjk = Self.isCJK(first.value)
        if let matchEnd = match(at: i, end: end, cjk: cjk) { return matchEnd }
        // Where step 3 matches nothing, the piece runs to where it next matches, or the stretch ends.
        while !atStretchEnd(j, end: end, cjk: cjk) && match(at: j, end: end, cjk: cjk) == nil {
            j += info(at: j).length
        }
        return j
    }

    /// Whether `j` ends the stretch of CJK (`cjk`) or of other text that a piece lies in: the end of
    /// the text, a number, or a change between CJK and the rest.
    @inline(__always)
    func atStretchEnd(_ j: Int, end: Int, cjk: Bool) -> Bool {
        if j >= end { return true }
        let b = text[j]
        if b < 0x80 { return cjk || b &- 0x30 < 10 }
        let c = info(at: j)
        return c.flags.contains(.number) || Self.isCJK(c.value) != cjk
    }

    @inline(__always)
    static func isASCIILetter(_ b: UInt8) -> Bool { (b | 0x20) &- 0x61 < 26 }

    @inline(__always)
    static func isASCIIPunctuation(_ b: UInt8) -> Bool {
        (0x21...0x2F).contains(b) || (0x3A...0x40).contains(b) || (0x5B...0x60).contains(b)
            || (0x7B...0x7E).contains(b)
    }

    /// The end of step 3's match at `i`, alternatives in order, or nil when none matches there. The
    /// stretch's end is the end of the string to the pattern.
    @inline(__always)
    func match(at i: Int, end: Int, cjk: Bool) -> Int? {
        let (f, length, value) = info(at: i)
        let next = i + length
        let nextInStretch = !atStretchEnd(next, end: end, cjk: cjk)
        let letterOrMark: CharacterClass = [.letter, .mark]
        // [ASCII punctuation][A-Za-z]+ (never in CJK, which has no ASCII)
        if value < 0x80 && Self.isASCIIPunctuation(UInt8(value)) && next < end && Self.isASCIILetter(text[next]) {
            var j = next + 1
            while j < end && Self.isASCIILetter(text[j]) { j += 1 }
            return j
        }
        // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
        if !f.isDisjoint(with: letterOrMark) { return skip(from: next, end: end, cjk: cjk, while: letterOrMark) }
        if f.isDisjoint(with: [.newline, .punctuationOrSymbol]) && nextInStretch
            && !info(at: next).flags.isDisjoint(with: letterOrMark)
        {
            return skip(from: next, end: end, cjk: cjk, while: letterOrMark)
        }
        // ' ?[\p{P}\p{S}]+[\r\n]*'
        var punctuation = -1
        if f.contains(.punctuationOrSymbol) {
            punctuation = i
        } else if value == 0x20 && nextInStretch && info(at: next).flags.contains(.punctuationOrSymbol) {
            punctuation = next
        }
        if punctuation >= 0 {
            var j = skip(from: punctuation, end: end, cjk: cjk, while: .punctuationOrSymbol)
            while !atStretchEnd(j, end: end, cjk: cjk) && (text[j] == 0x0A || text[j] == 0x0D) { j += 1 }
            return j
        }
        guard f.contains(.space) else { return nil }
        // \s*[\r\n]+ ends after the run's last newline; \s+(?!\S) leaves the run's last space to the
        // next piece unless the run reaches the stretch's end; \s+ takes a lone space.
        var j = i
        var lastNewline = -1
        var lastStart = i
        while !atStretchEnd(j, end: end, cjk: cjk) {
            let c = info(at: j)
            guard c.flags.contains(.space) else { break }
            if c.flags.contains(.newline) { lastNewline = j }
            lastStart = j
            j += c.length
        }
        if lastNewline >= 0 { return lastNewline + 1 }
        if atStretchEnd(j, end: end, cjk: cjk) || lastStart == i { return j }
        return lastStart
    }

    /// Advances over scalars of the stretch whose flags intersect `any`.
    @inline(__always)
    func skip(from start: Int, end: Int, cjk: Bool, while any: CharacterClass) -> Int {
        var j = start
        while !atStretchEnd(j, end: end, cjk: cjk) {
            let c = info(at: j)
            guard !c.flags.isDisjoint(with: any) else { break }
            j += c.length
        }
        return j
    }
}
