/// The alternatives of the patterns, matched by hand with the semantics of fancy-regex and PCRE:
/// Unicode `\s`, possessive quantifiers, case-insensitive contractions.
extension Pretokenizer {
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
