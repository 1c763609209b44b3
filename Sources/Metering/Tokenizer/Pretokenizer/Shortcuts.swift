/// Shortcuts for the common pieces (ASCII words, numbers and punctuation, runs of CJK ideographs, runs
/// of ASCII whitespace), which take them without the general machinery and hand anything they cannot
/// decide to it (nil). Off with ``fastPaths``, the reference the tests compare them with.
extension Pretokenizer {
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
}
