/// The pre-tokenization pattern of an encoding (docs/tokenizer.md).
enum PretokenizerPattern: Sendable {
    case cl100k
    case o200k
    case qwen
}

/// Splits text into the pieces BPE runs on, exactly as each encoding's regular expression does
/// (docs/tokenizer.md), without a regex engine: each alternative is matched by hand, in order, first
/// match wins (`Alternatives.swift`), after shortcuts for the common pieces (`Shortcuts.swift`,
/// `ASCIIRuns.swift`).
///
/// Input is valid UTF-8. Positions are byte offsets. Every step is a forward scan, so splitting is
/// linear in the input whatever it contains.
struct Pretokenizer {
    let text: UnsafeBufferPointer<UInt8>
    let pattern: PretokenizerPattern
    let classes: CharacterClassTable
    /// The shortcuts: ASCII words, numbers and punctuation, CJK runs, and runs of printable ASCII
    /// (``forEachPiece(_:)``); off only in tests, as the reference.
    var fastPaths = true

    var count: Int { text.count }

    /// Calls `body` with the start and end of each piece, in order, as ``pieceEnd(from:)`` splits the
    /// text.
    ///
    /// Where the text is a run of printable ASCII other than the space and the apostrophe (base64, hex,
    /// keys, URLs, minified code), the boundaries come up to 64 at a time from bit masks of the byte
    /// classes (``asciiRunStarts(from:)``). Such runs are mostly pieces of one to four bytes, and
    /// finding each one on its own cost as much as encoding it. The last piece of each run, and
    /// everything else, goes to ``pieceEnd(from:)``, which sees what follows.
    @inline(__always)
    func forEachPiece(_ body: (_ start: Int, _ end: Int) -> Void) {
        var i = 0
        while i < count {
            if fastPaths && beginsRun(i) {
                // Every boundary before the run's end (or the 64th byte) is found here, so the
                // general piece that follows the last one reaches past it.
                var starts = asciiRunStarts(from: i)
                let base = i
                while starts != 0 {
                    let end = base + starts.trailingZeroBitCount
                    body(i, end)
                    i = end
                    starts &= starts &- 1
                }
            }
            let end = pieceEnd(from: i)
            body(i, end)
            i = end
        }
    }

    // MARK: Scalars

    @inline(__always)
    func flags(at i: Int) -> CharacterClass {
        let b = text[i]
        if b < 0x80 { return CharacterClass(rawValue: classes.ascii[Int(b)]) }
        return CharacterClass(rawValue: classes.flags(text.scalar(at: i).value))
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

    /// Advances over scalars whose flags do not intersect `none`.
    @inline(__always)
    func skip(avoiding none: CharacterClass, from i: Int) -> Int {
        var j = i
        while j < count, flags(at: j).rawValue & none.rawValue == 0 { j += length(at: j) }
        return j
    }

    // MARK: Patterns

    /// The end of the piece starting at `i` (< count). Each pattern tries the shortcuts
    /// (`Shortcuts.swift`), then its alternatives in order (`Alternatives.swift`).
    func pieceEnd(from i: Int) -> Int {
        switch pattern {
        case .cl100k: return cl100k(i)
        case .o200k: return o200k(i)
        case .qwen: return qwen(i)
        }
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

}
