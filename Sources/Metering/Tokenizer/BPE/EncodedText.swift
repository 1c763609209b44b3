/// Texts that look like encoded data (base64, keys, hashes): told apart from prose once per text, then
/// encoded window by window from the pre-tokenizer's masks of piece starts, with their lookups
/// screened (o200k) or their pieces cut where no token can span a boundary (cl100k and qwen: `Cuts.swift`).
extension BytePairEncoder {
    /// Whether a text looks like encoded data: at least half of up to eight samples of 16 bytes,
    /// spread over it, look like random letters (``isChurningASCII(_:_:)``). Texts under 64 bytes do
    /// not.
    static func looksEncoded(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard text.count >= 64, let base = text.baseAddress else { return false }
        let samples = min(8, text.count / 16)
        let step = (text.count - 16) / (samples - 1)
        var random = 0
        for i in 0..<samples where isChurningASCII(base + i * step, 16) { random += 1 }
        return 2 * random >= samples
    }

    /// Whether the first 16 bytes of the piece look like random letters: ASCII, with at least two
    /// capitals and two small letters, and either
    /// - at least four of each and the case bit (0x20) differing between neighbours at least 5 times
    ///   in the 15 pairs: random letters (base64, keys, hashes) flip about every other letter, words
    ///   and identifiers (`FixedWidthInteger`, `NIOAsyncSequenceProducer`) at most twice per capital,
    ///   and have few of them; or
    /// - at most three vowels: random letters have one in five, words and identifiers one in three
    ///   or more.
    ///
    /// Random letters make tokens of one to three bytes, so backtracking's longest match rarely stands
    /// and it keeps taking tokens back; tiktoken's scan, which only ever merges, is faster on them up
    /// to a few dozen bytes (``churningBacktrackFrom``). Words make long tokens, which backtracking
    /// finds directly.
    @inline(never)
    static func isChurningASCII(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        guard n >= 16 else { return false }
        let raw = UnsafeRawPointer(p)
        let a = UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self))
        let b = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard (a | b) & 0x8080_8080_8080_8080 == 0 else { return false }
        let capitals =
            Pretokenizer.letterMask(a, true, false).nonzeroBitCount
            + Pretokenizer.letterMask(b, true, false).nonzeroBitCount
        let small =
            Pretokenizer.letterMask(a, false, true).nonzeroBitCount
            + Pretokenizer.letterMask(b, false, true).nonzeroBitCount
        guard capitals >= 2, small >= 2 else { return false }
        // Byte k against byte k + 1: seven pairs within each word, and the one across them.
        let caseBits: UInt64 = 0x0020_2020_2020_2020
        let flips =
            ((a ^ a >> 8) & caseBits).nonzeroBitCount + ((b ^ b >> 8) & caseBits).nonzeroBitCount
            + Int(truncatingIfNeeded: (a >> 56 ^ b) >> 5 & 1)
        if capitals >= 4 && small >= 4 && flips >= 5 { return true }
        return vowelCount(a) + vowelCount(b) <= 3
    }

    /// The bytes of an ASCII word that are `a e i o u` in either case (only capital vowels fold onto
    /// small ones under `| 0x20`).
    @inline(__always)
    static func vowelCount(_ word: UInt64) -> Int {
        let folded = word | 0x20 &* ByteLanes.ones
        @inline(__always) func equal(_ c: UInt64) -> UInt64 { ~ByteLanes.notEqual(folded, c) }
        return ((equal(0x61) | equal(0x65) | equal(0x69) | equal(0x6F) | equal(0x75)) & (0x80 &* ByteLanes.ones))
            .nonzeroBitCount
    }

    /// Encodes a whole text that looks like encoded data (``looksEncoded(_:)``). In its runs of
    /// printable ASCII, where the pre-tokenizer finds up to 64 bytes of pieces at once
    /// (``Pretokenizer/asciiRunStarts(from:)``), the pieces go window by window from those masks, with
    /// no call per piece. In cl100k and qwen (``searchesCuts``), the cuts are searched over all of a
    /// window's pieces in one scan too, and each part between a piece boundary or a cut merges on its
    /// own, with no test of which pieces to search. A cut found next to a piece boundary judges by
    /// bytes of the neighbouring piece too: more bytes can only make a boundary look mergeable, so a
    /// cut so found is a cut within the piece. A part that is a whole piece may be any token; a part
    /// of a piece only one BPE can make (in cl100k and qwen every token of such bytes is both). In
    /// o200k the parts are the pieces, screened (``encodeScreened(_:_:emit:)``). Everything else goes
    /// piece by piece, as ``encodeSearchingCuts(_:_:emit:)`` or ``encodeScreened(_:_:emit:)``.
    ///
    /// With `tokenCount`, the caller only counts: the parts of one and two bytes (most of random
    /// base64's pieces in o200k) are counted in bulk (``countShortParts(_:bounds:span:)``) and passed
    /// to it, and only the longer ones go one by one, to `emit`. So tokens are counted out of order.
    @inline(__always)
    func encodeText(encoded splitter: Pretokenizer, emit: (UInt32) -> Void, tokenCount: ((Int) -> Void)? = nil) {
        let base = splitter.text.baseAddress!
        var i = 0
        while i < splitter.count {
            // Window after window: each takes the pieces up to its last start, and the piece from
            // there begins the next one, or goes the general way where the run ends.
            while splitter.fastPaths && splitter.beginsRun(i) {
                let starts = splitter.asciiRunStarts(from: i)
                if starts == 0 { break }
                let span = 63 - starts.leadingZeroBitCount
                let window = base + i
                var bounds = starts | 1
                if searchesCuts && span > 1 {
                    var scan = merges.cutScan(window, span)
                    bounds |= scan.next(1, span - 1) << 1
                }
                if let tokenCount {
                    var (tokens, longer) = countShortParts(window, bounds: bounds, span: span)
                    tokenCount(tokens)
                    while longer != 0 {
                        let a = longer.trailingZeroBitCount
                        let b = a + 1 + (bounds >> UInt64(a + 1)).trailingZeroBitCount
                        encodeLongPart(window, a, b, pieceStarts: starts | 1, emit: emit)
                        longer &= longer &- 1
                    }
                } else {
                    var rest = bounds & ~1
                    var a = 0
                    while rest != 0 {
                        let b = rest.trailingZeroBitCount
                        if b - a < 3 {
                            encodeSmallPart(window + a, b - a, emit: emit)
                        } else {
                            encodeLongPart(window, a, b, pieceStarts: starts | 1, emit: emit)
                        }
                        a = b
                        rest &= rest &- 1
                    }
                }
                i += span
            }
            let end = splitter.pieceEnd(from: i)
            if searchesCuts {
                encodeSearchingCuts(base + i, end - i, emit: emit)
            } else {
                encodeScreened(base + i, end - i, emit: emit)
            }
            i = end
        }
    }

    /// The part `window[a..<b]` (three bytes or more) of ``encodeText(encoded:emit:tokenCount:)``.
    @inline(__always)
    func encodeLongPart(
        _ window: UnsafePointer<UInt8>, _ a: Int, _ b: Int, pieceStarts: UInt64, emit: (UInt32) -> Void
    ) {
        if searchesCuts {
            let isPiece = pieceStarts >> UInt64(a) & pieceStarts >> UInt64(b) & 1 != 0
            encodeUncut(window + a, b - a, isPiece: isPiece, emit: emit)
        } else {
            encodeScreenedLong(window + a, b - a, emit: emit)
        }
    }

    /// For the parts between the set bits of `bounds` (bit 0 and the last, `span`, among them) in the
    /// bytes at `p`: the tokens of those of one and two bytes, with no branch on each part's length
    /// (one token per byte; a pair is one token or two, by the pair table), and where the longer ones
    /// start.
    @inline(__always)
    func countShortParts(_ p: UnsafePointer<UInt8>, bounds: UInt64, span: Int) -> (tokens: Int, longer: UInt64) {
        let parts = bounds & ~(1 << UInt64(span))  // where the parts start
        var tokens = (parts & bounds >> 1).nonzeroBitCount
        var pairs = parts & ~(bounds >> 1) & bounds >> 2
        while pairs != 0 {
            let k = pairs.trailingZeroBitCount
            tokens += pairRanks[Int(p[k]) << 8 | Int(p[k + 1])] == UInt32.max ? 2 : 1
            pairs &= pairs &- 1
        }
        return (tokens, parts & ~(bounds >> 1) & ~(bounds >> 2))
    }

    /// ``encode(_:_:emit:)`` for the pieces of text that looks like encoded data in o200k, whose
    /// pre-tokenizer cuts random letters into pieces of a few bytes where the case turns: those of one
    /// and two bytes inline, the others by ``encodeScreenedLong(_:_:emit:)``.
    @inline(__always)
    func encodeScreened(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n < 3 {
            encodeSmallPart(piece, n, emit: emit)
            return
        }
        encodeScreenedLong(piece, n, emit: emit)
    }

    /// ``encodeScreened(_:_:emit:)`` for a piece of three bytes or more, which is looked up whole only
    /// if its first and last three bytes occur in some token (``MergeTables/mayBeToken(_:_:)``, from a
    /// table small enough to stay in cache). Most pieces of base64 fail that test, and the lookups it
    /// spares (a 256 KiB bit table for three bytes, a Bloom filter and the token table for more) miss
    /// the cache. Not in cl100k and qwen, whose parts between cuts mostly pass it. Out of line, so that
    /// the loop over pieces holds only the short ones.
    @inline(never)
    func encodeScreenedLong(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if merges.mayBeToken(piece, n) {
            let whole = rank(piece, n)
            if whole != UInt32.max {
                emit(whole)
                return
            }
        }
        merge(piece, n, charCuts: false, emit: emit)
    }
}
