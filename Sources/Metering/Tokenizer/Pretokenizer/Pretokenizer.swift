/// Splits text into the pieces BPE runs on, exactly as each encoding's regular expression does
/// (docs/tokenizer.md), without a regex engine: each alternative is matched by hand, in order, first match wins.
///
/// Input is valid UTF-8. Positions are byte offsets. Every step is a forward scan, so splitting is
/// linear in the input whatever it contains.
enum PretokenizerPattern: Sendable {
    case cl100k
    case o200k
    case qwen
}

struct Pretokenizer {
    let text: UnsafeBufferPointer<UInt8>
    let pattern: PretokenizerPattern
    let classes: CharacterClassTable
    /// The shortcuts: ASCII words, numbers and punctuation, CJK runs, and runs of printable ASCII
    /// (``forEachPiece(_:)``); off only in tests, as the reference.
    var fastPaths = true

    var count: Int { text.count }

    /// The scalar at byte offset `i` and its length in bytes.
    @inline(__always)
    func scalar(at i: Int) -> (value: UInt32, length: Int) {
        let b0 = UInt32(text[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(text[i + 1]) & 0x3F, 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | (UInt32(text[i + 1]) & 0x3F) << 6 | UInt32(text[i + 2]) & 0x3F, 3)
        }
        return (
            (b0 & 0x07) << 18 | (UInt32(text[i + 1]) & 0x3F) << 12 | (UInt32(text[i + 2]) & 0x3F) << 6
                | UInt32(text[i + 3]) & 0x3F, 4
        )
    }

    @inline(__always)
    func flags(at i: Int) -> CharacterClass {
        let b = text[i]
        if b < 0x80 { return CharacterClass(rawValue: classes.ascii[Int(b)]) }
        return CharacterClass(rawValue: classes.flags(scalar(at: i).value))
    }

    @inline(__always)
    func length(at i: Int) -> Int {
        let b = text[i]
        if b < 0x80 { return 1 }
        if b < 0xE0 { return 2 }
        if b < 0xF0 { return 3 }
        return 4
    }

    /// Advances over scalars whose flags intersect `any`.
    @inline(__always)
    func skip(from i: Int, while any: CharacterClass) -> Int {
        var j = i
        while j < count, flags(at: j).rawValue & any.rawValue != 0 { j += length(at: j) }
        return j
    }

    /// `skip(from: i, while: .space)`, eight bytes at a time while they are all ASCII whitespace (tab to
    /// carriage return, and the space): a megabyte of spaces and tabs is one piece. A shortcut
    /// (``fastPaths``).
    @inline(__always)
    func skipSpace(from i: Int) -> Int {
        guard fastPaths else { return skip(from: i, while: .space) }
        var j = i
        let raw = UnsafeRawPointer(text.baseAddress!)
        while j + 8 <= count {
            let notSpace = Self.notSpaceBytes(raw.loadUnaligned(fromByteOffset: j, as: UInt64.self))
            if notSpace != 0 {
                j += notSpace.trailingZeroBitCount >> 3
                break
            }
            j += 8
        }
        return skip(from: j, while: .space)
    }

    /// Bit 7 of each byte of `word` (little-endian) set where that byte is not ASCII whitespace
    /// (0x09–0x0D, 0x20: the ASCII scalars with White_Space).
    @inline(__always)
    static func notSpaceBytes(_ word: UInt64) -> UInt64 {
        let w = UInt64(littleEndian: word)
        let x = w & (0x7F &* ByteLanes.ones)
        let space = ByteLanes.inRange(x, 0x09, 0x0D) | ~ByteLanes.notEqual(x, 0x20)
        return ~(space & ~w) & (0x80 &* ByteLanes.ones)
    }

    /// Advances over scalars whose flags do not intersect `none`.
    @inline(__always)
    func skip(avoiding none: CharacterClass, from i: Int) -> Int {
        var j = i
        while j < count, flags(at: j).rawValue & none.rawValue == 0 { j += length(at: j) }
        return j
    }

    /// The end of the piece starting at `i` (< count).
    func pieceEnd(from i: Int) -> Int {
        switch pattern {
        case .cl100k: return cl100k(i)
        case .o200k: return o200k(i)
        case .qwen: return qwen(i)
        }
    }

    // MARK: Shared alternatives

    /// Case-insensitive ASCII letter test; `ſ` (U+017F) folds to `s` as regex case folding does.
    @inline(__always)
    func isLetter(_ i: Int, _ lower: UInt8) -> (Bool, Int) {
        guard i < count else { return (false, 0) }
        let b = text[i]
        if b | 0x20 == lower { return (true, 1) }
        if lower == UInt8(ascii: "s"), b == 0xC5, i + 1 < count, text[i + 1] == 0xBF { return (true, 2) }
        return (false, 0)
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive, at `i` (which holds `'`). Returns the end or nil.
    func contraction(_ i: Int) -> Int? {
        guard i < count, text[i] == UInt8(ascii: "'") else { return nil }
        let j = i + 1
        for single in [UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d")] {
            let (ok, n) = isLetter(j, single)
            if ok { return j + n }
        }
        for (a, b) in [
            (UInt8(ascii: "r"), UInt8(ascii: "e")), (UInt8(ascii: "v"), UInt8(ascii: "e")),
            (UInt8(ascii: "l"), UInt8(ascii: "l")),
        ] {
            let (ok1, n1) = isLetter(j, a)
            if ok1 {
                let (ok2, n2) = isLetter(j + n1, b)
                if ok2 { return j + n1 + n2 }
            }
        }
        return nil
    }

    /// `[^\r\n\p{L}\p{N}]?\p{L}+` (possessive or not, the result is the same).
    func letters(_ i: Int) -> Int? {
        let f = flags(at: i)
        if f.contains(.letter) { return skip(from: i, while: .letter) }
        if f.isDisjoint(with: [.newline, .letter, .number]) {
            let j = i + length(at: i)
            if j < count, flags(at: j).contains(.letter) { return skip(from: j, while: .letter) }
        }
        return nil
    }

    /// ` ?[^\s\p{L}\p{N}]+` followed by any of `trailing` (`[\r\n]*` or `[\r\n/]*`).
    func punctuation(_ i: Int, slashTrails: Bool) -> Int? {
        var j = i
        if text[i] == 0x20, i + 1 < count, flags(at: i + 1).isDisjoint(with: [.space, .letter, .number]) {
            j = i + 1
        } else if !flags(at: i).isDisjoint(with: [.space, .letter, .number]) {
            return nil
        }
        j = skip(avoiding: [.space, .letter, .number], from: j)
        while j < count {
            let b = text[j]
            if b == 0x0A || b == 0x0D || (slashTrails && b == UInt8(ascii: "/")) { j += 1 } else { break }
        }
        return j
    }

    /// The whitespace alternatives shared by all three patterns, given the whitespace run [i, runEnd):
    /// up to the last `\r`/`\n` in the run; else `\s+(?!\S)` (the run, less its last scalar when
    /// something follows); else one scalar (`\s` in cl100k, `\s+` elsewhere).
    func whitespace(_ i: Int, runEnd: Int, singleFallback: Bool) -> Int {
        // \s*[\r\n] (cl100k) or \s*[\r\n]+ (others): through the last newline in the run. A byte
        // 0x0A or 0x0D is always that scalar (no UTF-8 sequence holds a byte below 0x80), so the
        // search goes back from the end, byte by byte.
        var j = runEnd
        while j > i {
            j -= 1
            if text[j] == 0x0A || text[j] == 0x0D { return j + 1 }
        }
        // \s+(?!\S)
        if runEnd == count { return runEnd }
        // Where the run's last scalar starts: back over its continuation bytes.
        var lastStart = runEnd - 1
        while text[lastStart] & 0xC0 == 0x80 { lastStart -= 1 }
        if lastStart > i { return lastStart }
        // \s (cl100k) or \s+ (o200k, qwen) — the run here is a single scalar either way.
        return singleFallback ? i + length(at: i) : runEnd
    }

    /// `\p{N}{1,max}`, greedy.
    func numbers(_ i: Int, atMost max: Int) -> Int {
        var j = i
        var n = 0
        while j < count, n < max, flags(at: j).contains(.number) {
            j += length(at: j)
            n += 1
        }
        return j
    }

    // MARK: Patterns

    // MARK: ASCII fast paths

    /// Past the optional `[^\r\n\p{L}\p{N}]` that may begin a word, for the fast paths: only an ASCII
    /// punctuation mark or space, and not ' (a contraction comes first in cl100k and qwen).
    @inline(__always)
    func asciiPrefixEnd(_ i: Int) -> Int {
        let b = text[i]
        let letterOrNumber = CharacterClass.letter.rawValue | CharacterClass.number.rawValue
        let prefix =
            b < 0x80 && classes.ascii[Int(b)] & letterOrNumber == 0 && b != 0x0A && b != 0x0D
            && b != UInt8(ascii: "'")
        return prefix ? i + 1 : i
    }

    /// The commonest piece of all, an ASCII word with an optional ASCII prefix (` the`, `(Hello`),
    /// without the general machinery: the same end the patterns give, or nil to take the general path
    /// (which also decides everything this does not: a following non-ASCII byte may continue the word).
    /// `casedWord` is o200k's `[A-Z]*[a-z]+`; otherwise cl100k's and qwen's `[A-Za-z]+`.
    @inline(__always)
    func asciiWord(_ i: Int, casedWord: Bool) -> Int? {
        var j = asciiPrefixEnd(i)
        let wordStart = j
        var lowerStart = j
        let high: UInt64 = 0x8080_8080_8080_8080
        if casedWord, j + 8 <= count,
            case let w = UnsafeRawPointer(text.baseAddress!).loadUnaligned(fromByteOffset: j, as: UInt64.self),
            case let capitals = (~Self.letterMask(w, true, false) & high).trailingZeroBitCount >> 3, capitals < 8
        {
            // Both runs from one load when the capitals end within eight bytes, as they nearly always do.
            let notSmall = ~Self.letterMask(w, false, true) & high & (UInt64.max << UInt64(8 * capitals))
            lowerStart = j + capitals
            let end = notSmall.trailingZeroBitCount >> 3
            j = end < 8 ? j + end : skipASCII(from: j + 8, capitals: false, small: true)
        } else {
            if casedWord { j = skipASCII(from: j, capitals: true, small: false) }
            lowerStart = j
            j = skipASCII(from: j, capitals: !casedWord, small: true)
        }
        // Without a lowercase letter, o200k still takes an uppercase run (its `U+W*`); the others need
        // a letter.
        guard j > lowerStart || (casedWord && lowerStart > wordStart), j > wordStart else { return nil }
        if j < count {
            let b = text[j]
            if b >= 0x80 { return nil }
            if casedWord, b == UInt8(ascii: "'") { return contraction(j) ?? j }
        }
        return j
    }

    /// Past the ASCII capitals and/or small letters from `j`, eight bytes at a time where eight are
    /// left: a word's end costs no mispredicted loop exit when the word is shorter than that.
    @inline(__always)
    func skipASCII(from j: Int, capitals: Bool, small: Bool) -> Int {
        var j = j
        let base = UnsafeRawPointer(text.baseAddress!)
        while j + 8 <= count {
            let inClass = Self.letterMask(base.loadUnaligned(fromByteOffset: j, as: UInt64.self), capitals, small)
            let run = (~inClass & 0x8080_8080_8080_8080).trailingZeroBitCount >> 3
            j += run
            if run < 8 { return j }
        }
        while j < count {
            let b = text[j]
            guard (capitals && b &- UInt8(ascii: "A") < 26) || (small && b &- UInt8(ascii: "a") < 26) else { break }
            j += 1
        }
        return j
    }

    /// Bit 7 of each byte of `word` (little-endian) set where that byte is an ASCII capital (`capitals`)
    /// or small letter (`small`); bytes from 0x80 are in no class.
    @inline(__always)
    static func letterMask(_ word: UInt64, _ capitals: Bool, _ small: Bool) -> UInt64 {
        let w = UInt64(littleEndian: word)
        let x = w & (0x7F &* ByteLanes.ones)
        var mask: UInt64 = 0
        if capitals { mask |= ByteLanes.inRange(x, 0x41, 0x5A) }
        if small { mask |= ByteLanes.inRange(x, 0x61, 0x7A) }
        return mask & ~w & (0x80 &* ByteLanes.ones)
    }

    /// The other ASCII pieces: a number `\p{N}{1,maxDigits}`, or punctuation ` ?[^\s\p{L}\p{N}]+`
    /// followed by `[\r\n]*` (`[\r\n/]*` in o200k). Nil to take the general path: when a non-ASCII
    /// byte could change the end, when `'` may begin a contraction, or when the piece is anything else
    /// (a word, whitespace). Code and encoded data (base64, hex, digit strings) are mostly these and
    /// words.
    @inline(__always)
    func asciiNumberOrPunctuation(_ i: Int, maxDigits: Int, slashTrails: Bool) -> Int? {
        let b = text[i]
        if b &- UInt8(ascii: "0") < 10 {
            var j = i + 1
            while j < count, j - i < maxDigits, text[j] &- UInt8(ascii: "0") < 10 { j += 1 }
            if j < count, j - i < maxDigits, text[j] >= 0x80 { return nil }  // a non-ASCII digit may follow
            return j
        }
        let notPunctuation =
            CharacterClass.space.rawValue | CharacterClass.letter.rawValue
            | CharacterClass.number.rawValue
        @inline(__always) func isPunctuation(_ j: Int) -> Bool {
            text[j] < 0x80 && classes.ascii[Int(text[j])] & notPunctuation == 0
        }
        var j = i
        if b == 0x20 {
            j += 1
            guard j < count, isPunctuation(j) else { return nil }
        } else if !isPunctuation(i) || b == UInt8(ascii: "'") {
            return nil
        }
        // A mark that may begin a word (`[^\r\n\p{L}\p{N}]` before a letter) is the word's.
        if j == i, i + 1 < count,
            text[i + 1] >= 0x80 || classes.ascii[Int(text[i + 1])] & CharacterClass.letter.rawValue != 0
        {
            return nil
        }
        j += 1
        while j < count, isPunctuation(j) { j += 1 }
        if j < count, text[j] >= 0x80 { return nil }  // non-ASCII punctuation may continue the run
        while j < count, text[j] == 0x0A || text[j] == 0x0D || (slashTrails && text[j] == UInt8(ascii: "/")) {
            j += 1
        }
        return j
    }

    /// Whether the bytes at `j` begin a CJK Unified Ideograph from U+4E00 to U+9FFF: all assigned
    /// (since Unicode 14), all Lo, so letters in every pattern and in both of o200k's case classes.
    @inline(__always)
    func isCJKIdeograph(_ j: Int) -> Bool {
        guard j + 2 < count else { return false }
        let b0 = text[j]
        return (0xE5...0xE9).contains(b0) || (b0 == 0xE4 && text[j + 1] >= 0xB8)
    }

    /// The other common piece, a run of CJK ideographs with an optional prefix scalar (a space, `，`),
    /// ended by anything that cannot continue a word: not a letter, a mark or an apostrophe. Every
    /// pattern takes exactly that run; anything else goes the general way.
    @inline(__always)
    func cjkRun(_ i: Int) -> Int? {
        var j = asciiPrefixEnd(i)
        if j == i && text[i] >= 0x80 && !isCJKIdeograph(i) {
            // A non-ASCII prefix (CJK punctuation, an ideographic space): any one scalar that is not a
            // letter, a number or \r \n. A mark qualifies too; as a prefix or as part of the word, it
            // gives the same end.
            guard flags(at: i).isDisjoint(with: [.letter, .number, .newline]) else { return nil }
            j = i + length(at: i)
        }
        let start = j
        while isCJKIdeograph(j) { j += 3 }
        guard j > start else { return nil }
        if j < count {
            let b = text[j]
            if b >= 0x80 {
                // Another letter or a mark may continue the word (or, for o200k, change how it splits).
                if !flags(at: j).isDisjoint(with: [.letter, .mark, .upperish, .lowerish]) { return nil }
            } else if b | 0x20 &- UInt8(ascii: "a") < 26 || b == UInt8(ascii: "'") {
                return nil
            }
        }
        return j
    }

    func cl100k(_ i: Int) -> Int {
        if fastPaths {
            if let end = asciiWord(i, casedWord: false) { return end }
            if let end = asciiNumberOrPunctuation(i, maxDigits: 3, slashTrails: false) { return end }
            if let end = cjkRun(i) { return end }
        }
        if let end = contraction(i) { return end }
        if let end = letters(i) { return end }
        let f = flags(at: i)
        if f.contains(.number) { return numbers(i, atMost: 3) }
        if let end = punctuation(i, slashTrails: false) { return end }
        // Whitespace: \s++$ takes a run that reaches the end.
        let runEnd = skipSpace(from: i)
        if runEnd == count { return runEnd }
        return whitespace(i, runEnd: runEnd, singleFallback: true)
    }

    func qwen(_ i: Int) -> Int {
        if fastPaths {
            if let end = asciiWord(i, casedWord: false) { return end }
            if let end = asciiNumberOrPunctuation(i, maxDigits: 1, slashTrails: false) { return end }
            if let end = cjkRun(i) { return end }
        }
        if let end = contraction(i) { return end }
        if let end = letters(i) { return end }
        if flags(at: i).contains(.number) { return numbers(i, atMost: 1) }
        if let end = punctuation(i, slashTrails: false) { return end }
        let runEnd = skipSpace(from: i)
        return whitespace(i, runEnd: runEnd, singleFallback: false)
    }

    func o200k(_ i: Int) -> Int {
        if fastPaths {
            if let end = asciiWord(i, casedWord: true) { return end }
            if let end = asciiNumberOrPunctuation(i, maxDigits: 3, slashTrails: true) { return end }
            if let end = cjkRun(i) { return end }
        }
        let f = flags(at: i)
        // A word starts with a scalar in U or W; skip the word alternatives where none can start.
        let wordClasses: CharacterClass = [.upperish, .lowerish]
        let wordHere = !f.isDisjoint(with: wordClasses)
        let next = i + length(at: i)
        let wordAfterPrefix =
            f.isDisjoint(with: [.newline, .letter, .number]) && next < count
            && !flags(at: next).isDisjoint(with: wordClasses)
        // Alternative 1: [^\r\n\p{L}\p{N}]?U*W+ contraction?
        if wordAfterPrefix, let end = o200kWord(next, lowerRequired: true) { return end }
        if wordHere, let end = o200kWord(i, lowerRequired: true) { return end }
        // Alternative 2: [^\r\n\p{L}\p{N}]?U+W* contraction?
        if wordAfterPrefix, let end = o200kWord(next, lowerRequired: false) { return end }
        if wordHere, let end = o200kWord(i, lowerRequired: false) { return end }
        if f.contains(.number) { return numbers(i, atMost: 3) }
        if let end = punctuation(i, slashTrails: true) { return end }
        let runEnd = skipSpace(from: i)
        return whitespace(i, runEnd: runEnd, singleFallback: false)
    }

    /// From `s`: `U*W+` (lowerRequired) or `U+W*`, then an optional contraction.
    func o200kWord(_ s: Int, lowerRequired: Bool) -> Int? {
        var end: Int
        if lowerRequired {
            // U*, noting where its last scalar that is also in W ends: if W+ finds nothing after the
            // run, U* backtracks to there (CJK and other Lo/Lm letters are in both classes).
            var upperEnd = s
            var lastLowerEnd = -1
            while upperEnd < count {
                let f = flags(at: upperEnd)
                guard f.contains(.upperish) else { break }
                upperEnd += length(at: upperEnd)
                if f.contains(.lowerish) { lastLowerEnd = upperEnd }
            }
            let lowerEnd = skip(from: upperEnd, while: .lowerish)
            if lowerEnd > upperEnd {
                end = lowerEnd
            } else {
                guard lastLowerEnd > 0 else { return nil }
                end = lastLowerEnd
            }
        } else {
            let upperEnd = skip(from: s, while: .upperish)
            guard upperEnd > s else { return nil }
            end = skip(from: upperEnd, while: .lowerish)
        }
        if let c = contraction(end) { end = c }
        return end
    }
}
