import Foundation

/// Byte-pair merging of one piece: the result of repeatedly joining the adjacent pair whose bytes have
/// the lowest rank, leftmost first on ties, as tiktoken does.
///
/// Pieces of two to four bytes merge by the scan unrolled (the pair ranks decide it); other short
/// pieces use tiktoken's own array scan, which is quadratic but fastest for a few bytes (and, up to 48
/// bytes, for random letters: ``isChurningASCII(_:_:)``). Longer ones, which a hostile or unusual input
/// can make arbitrarily long (a megabyte of one letter is one piece), use the backtracking encoder:
/// linear time, and several times faster than merging on CJK text, whose pieces are whole clauses. The
/// scan is also the reference the backtracking encoder and the unrolled merges are tested against.
///
/// Text that looks like encoded data (base64, keys, hashes) goes window by window
/// (``encodeText(encoded:emit:tokenCount:)``). In cl100k and qwen, whose pieces of random letters run
/// on for dozens of bytes, pieces are cut where no token can span the boundary, and the short parts
/// merge on their own. When the caller only counts, the parts of one and two bytes are counted in bulk.
struct BytePairEncoder {
    let vocabulary: BPEVocabulary
    let table: UnsafeBufferPointer<BPEVocabulary.Slot>
    let bytes: UnsafeBufferPointer<UInt8>
    let merges: MergeTables
    /// Pieces at least this long (and not a token themselves) are backtracked.
    let backtrackFrom: Int
    /// `vocabulary.byteRanks` and `vocabulary.pairRanks`, one load away rather than three: the parts
    /// of one and two bytes (most of encoded data) read nothing else.
    let byteRanks: UnsafePointer<UInt32>
    let pairRanks: UnsafePointer<UInt32>
    /// For a token `last` and a candidate `token` after it, the first candidate from `token` down its
    /// chain of shorter prefixes that may follow `last` (``firstValid(after:from:memo:)``), as found
    /// while encoding this text; or nil to ask the merge tables every time. `1 + pairMemoSlots` words,
    /// of which the first says whether the rest are set up yet (0 until a piece first needs them), and
    /// each of the rest holds `last << 21 | token` with the answer above it, or `UInt64.max` when
    /// empty. Sets of four, the most recent first: with one or two ways per set, the few keys that
    /// share a set kept evicting each other.
    ///
    /// Backtracking through a repetitive piece asks the same few questions over and over. In a run of
    /// `/`, the longest match (96 bytes in cl100k) never stands: the encoder follows it down a path of
    /// shorter tokens that fails, and takes back most positions one at a time, trying each shorter run
    /// of slashes against the token before. Such a megabyte took 200–400 ms when each candidate walked
    /// down both tokens' merge trees (``MergeTables/isValidPair(_:_:)``), 14 candidates per byte;
    /// 85 ms when each pair's answer was remembered; 40 ms now that a refused run of candidates is
    /// skipped in one step. The memo is consulted only while a piece has had more than one refused
    /// candidate per ``memoMissSpacing`` bytes: on ordinary text, where the longest match nearly always
    /// stands and questions seldom repeat, it would only cost (15% on a megabyte of random CJK
    /// ideographs, with about one refusal per 400 bytes).
    var pairMemo: UnsafeMutablePointer<UInt64>? = nil
    /// Pieces at least this long that repeat a unit of up to ``longestPeriod`` bytes are encoded by
    /// ``encodePeriodic(_:_:emit:)`` (`Int.max`: never, the reference in tests).
    var periodicFrom = Self.defaultPeriodicFrom

    /// Whether the encoding searches text that looks like encoded data for cuts
    /// (``encodeText(encoded:emit:tokenCount:)``). Not in o200k, whose pre-tokenizer already ends a piece
    /// of letters where small letters turn capital, so that random letters make short pieces; its
    /// lookups are screened instead (``encodeScreened(_:_:emit:)``).
    var searchesCuts = true
    /// Which pieces that end in a non-ASCII byte ``merge(_:_:charCuts:emit:)`` searches for cuts
    /// between three-byte characters (``encodeAtCharCuts(_:_:emit:)``): none (the reference in tests),
    /// those of 64 bytes or more, or those of two characters or more. Set by encoding
    /// (``TokenEncoding/charCutSearch``). One byte, in the padding after ``searchesCuts``: with an
    /// `Int` threshold here, the loops over short pieces (a megabyte of digits) ran 10% slower.
    var charCutSearch = CharCutSearch.none

    init(
        vocabulary: BPEVocabulary, table: UnsafeBufferPointer<BPEVocabulary.Slot>, bytes: UnsafeBufferPointer<UInt8>,
        merges: MergeTables, backtrackFrom: Int
    ) {
        self.vocabulary = vocabulary
        self.table = table
        self.bytes = bytes
        self.merges = merges
        self.backtrackFrom = backtrackFrom
        self.byteRanks = vocabulary.byteRanks.base
        self.pairRanks = vocabulary.pairRanks.base
    }

    enum CharCutSearch: UInt8 {
        case none, longPieces, everyPiece
    }

    /// Whether ``charCutSearch`` takes the piece (not yet known to have a cut).
    @inline(__always)
    func searchesCharCuts(_ piece: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let from =
            switch charCutSearch {
            case .none: Int.max
            case .longPieces: 64
            case .everyPiece: 6
            }
        return n >= from && piece[n - 1] >= 0x80
    }

    static let defaultPeriodicFrom = 2 * periodicSample
    /// Bytes encoded from the start of a periodic piece to find its repeating block of tokens.
    static let periodicSample = 4096
    static let longestPeriod = 16

    static let pairMemoSlots = 2048
    static let memoMissSpacing = 4
    /// Texts shorter than this encode without the memo.
    static let pairMemoFromBytes = 1024

    static let defaultBacktrackFrom = 16
    /// ASCII pieces whose case flips often (``isChurningASCII(_:_:)``) are merged by the scan below this
    /// length, and backtracked from it.
    static let churningBacktrackFrom = 48

    @inline(__always)
    func rank(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        vocabulary.rank(p, n, table: table, bytes: bytes)
    }

    /// Emits the ranks of `piece[0..<n]` in order.
    @inline(__always)
    func encode(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n == 1 {
            emit(byteRanks[Int(piece[0])])
            return
        }
        let whole = rank(piece, n)
        if whole != UInt32.max {
            emit(whole)
            return
        }
        merge(piece, n, emit: emit)
    }

    /// ``encode(_:_:emit:)`` for the pieces of text that looks like encoded data (``looksEncoded(_:)``)
    /// that ``encodeText(encoded:emit:tokenCount:)`` does not take run by run: a piece that holds a capital
    /// after its first two bytes is searched for cuts first. Prose does not pay for the test: on every
    /// piece, it cost English and code several percent.
    @inline(__always)
    func encodeSearchingCuts(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n >= 4 && Self.hasInnerCapital(piece, n) {
            encodeMixedCase(piece, n, emit: emit)
        } else {
            encode(piece, n, emit: emit)
        }
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
    /// the cache. In cl100k and qwen, whose parts between cuts mostly pass it, the test only cost time.
    /// Out of line, so that the loop over pieces holds only the short ones (2% on base64).
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

    /// Whether a text looks like encoded data (base64, keys, hashes): at least half of up to eight
    /// samples of 16 bytes, spread over it, look like random letters (``isChurningASCII(_:_:)``).
    /// Texts under 64 bytes do not.
    static func looksEncoded(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard text.count >= 64, let base = text.baseAddress else { return false }
        let samples = min(8, text.count / 16)
        let step = (text.count - 16) / (samples - 1)
        var random = 0
        for i in 0..<samples where isChurningASCII(base + i * step, 16) { random += 1 }
        return 2 * random >= samples
    }

    /// ``encode(_:_:emit:)`` for a piece with a capital after its first two bytes, out of line so that
    /// the common path stays small. A piece with a cut is no token (a token holds every pair and
    /// triple of its bytes), so the search for cuts comes first and spares the lookup of the whole
    /// piece.
    @inline(never)
    func encodeMixedCase(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if !encodeAtCuts(piece, n, emit: emit) { encodeUncut(piece, n, isPiece: true, emit: emit) }
    }

    /// Emits the ranks of a whole piece (`isPiece`) or of a part of one (``encodeAtCuts(_:_:emit:)``,
    /// ``encodeAtCharCuts(_:_:emit:)``) of two bytes or more, as ``encode(_:_:emit:)`` does, without
    /// searching it for cuts of either kind. A part is
    /// one token only if BPE can make it: tiktoken's lookup of the whole piece does not apply to it.
    @inline(never)
    func encodeUncut(_ piece: UnsafePointer<UInt8>, _ n: Int, isPiece: Bool, emit: (UInt32) -> Void) {
        let whole = rank(piece, n)
        if whole != UInt32.max && (isPiece || merges.length.base[Int(whole)] != 0) {
            emit(whole)
            return
        }
        merge(piece, n, charCuts: false, emit: emit)
    }

    /// Whether the last four bytes of the piece (n ≥ 4) that come after its first two hold a capital
    /// letter: four random letters have one 15 times in 16; words (` The`, `Hello`) do not. One load and no branch: the lengths of words are too varied to predict.
    @inline(__always)
    static func hasInnerCapital(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let last = UInt32(littleEndian: UnsafeRawPointer(p + n - 4).loadUnaligned(as: UInt32.self))
        let inner = last >> UInt32(8 * (6 - min(n, 6)))  // shifts out bytes 0 and 1 when n < 6
        return Pretokenizer.letterMask(UInt64(inner), true, false) != 0
    }

    /// Encodes the piece part by part when BPE can never merge across some of its boundaries (cuts,
    /// ``MergeTables/cutScan(_:_:)``): the result is the same, and the parts are short. Random letters
    /// have such a boundary every two or three bytes in cl100k, where a letter run makes one piece: a
    /// run of 12 then merges as four parts of three, each in a few lookups, where tiktoken's scan takes
    /// dozens. Returns false, having emitted nothing, when the piece has no such boundary.
    @inline(__always)
    func encodeAtCuts(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        var start = 0
        var k = 1
        var scan = merges.cutScan(piece, n)
        while k < n {
            var cuts = scan.next(k, min(n - k, 64))
            while cuts != 0 {
                let cut = k + cuts.trailingZeroBitCount
                encodeSmallPart(piece + start, cut - start, emit: emit)
                start = cut
                cuts &= cuts &- 1
            }
            k += 64
        }
        guard start > 0 else { return false }
        encodeSmallPart(piece + start, n - start, emit: emit)
        return true
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
    /// With `tokenCount`, the caller only counts: the parts of one and two bytes (69% of random
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

    /// ``encodeAtCuts(_:_:emit:)`` for text of three-byte characters (CJK ideographs, kana, Hangul and
    /// their punctuation), at the boundaries between them (``MergeTables/isCharCut(_:)``): from the
    /// start of the piece (or its second byte, after one ASCII byte) up to the first character of
    /// another length. A run of rare ideographs, which BPE makes one or two tokens per character, then
    /// merges character by character in a few lookups, where backtracking tries and takes back
    /// candidates all along it. Each part is one token only if BPE can make it, and is not searched
    /// again (``encodeUncut(_:_:isPiece:emit:)``).
    ///
    /// Only when at least half of the first (up to) eight boundaries are cuts: in prose, whose words are
    /// tokens, the parts would be long and the search only cost time. Returns false, having emitted
    /// nothing, when the piece is not searched or has no cut.
    @inline(never)
    func encodeAtCharCuts(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        let first = piece[0] < 0x80 ? 1 : 0
        var checked = 0
        var cuts = 0
        var i = first
        while checked < 8 && i + 6 <= n && Self.beginsCharPair(piece + i) {
            i += 3
            checked += 1
            if merges.isCharCut(piece + i) { cuts += 1 }
        }
        guard cuts > 0 && 2 * cuts >= checked else { return false }
        var start = 0
        i = first
        while i + 6 <= n && Self.beginsCharPair(piece + i) {
            i += 3
            if merges.isCharCut(piece + i) {
                encodeUncut(piece + start, i - start, isPiece: false, emit: emit)
                start = i
            }
        }
        encodeUncut(piece + start, n - start, isPiece: false, emit: emit)
        return true
    }

    /// Whether `p[0..<6]` are two three-byte UTF-8 characters, the bytes
    /// ``MergeTables/isCharCut(_:)`` reads at the boundary between them: by their shapes, so that any
    /// bytes, not only valid UTF-8, are judged right. Two loads.
    @inline(__always)
    static func beginsCharPair(_ p: UnsafePointer<UInt8>) -> Bool {
        let four = UInt32(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self))
        let two = UInt16(littleEndian: UnsafeRawPointer(p + 4).loadUnaligned(as: UInt16.self))
        return four & 0xF0C0_C0F0 == 0xE080_80E0 && two & 0xC0C0 == 0x8080
    }

    /// Emits the ranks of a part of a piece between cuts (``encodeAtCuts(_:_:emit:)``): the parts of
    /// one and two bytes (most of them) inline, the others by ``encodeUncut(_:_:isPiece:emit:)``.
    @inline(__always)
    func encodeSmallPart(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n == 1 {
            emit(byteRanks[Int(piece[0])])
        } else if n == 2 {
            // Two-byte tokens are always reachable.
            let r = pairRanks[Int(piece[0]) << 8 | Int(piece[1])]
            if r != UInt32.max {
                emit(r)
            } else {
                emit(byteRanks[Int(piece[0])])
                emit(byteRanks[Int(piece[1])])
            }
        } else {
            encodeUncut(piece, n, isPiece: false, emit: emit)
        }
    }

    /// Emits the ranks of `piece[0..<n]` (n ≥ 2), which is not a token BPE can make, by merging.
    /// `charCuts: false` skips the search for cuts between CJK characters (``charCutSearch``): for a
    /// part between such cuts, already searched, and in text that looks like encoded data, whose
    /// pieces are ASCII (where the test only cost base64 in qwen 3%).
    @inline(__always)
    func merge(_ piece: UnsafePointer<UInt8>, _ n: Int, charCuts: Bool = true, emit: (UInt32) -> Void) {
        // Two and three bytes that are not a token merge at most once, and the pair ranks decide it:
        // no scan needed. (Encoded data such as base64 is mostly pieces this short.)
        if n == 2 {
            emit(byteRanks[Int(piece[0])])
            emit(byteRanks[Int(piece[1])])
            return
        }
        if n == 3 {
            let left = pairRanks[Int(piece[0]) << 8 | Int(piece[1])]
            let right = pairRanks[Int(piece[1]) << 8 | Int(piece[2])]
            if left == UInt32.max && right == UInt32.max {
                emit(byteRanks[Int(piece[0])])
                emit(byteRanks[Int(piece[1])])
                emit(byteRanks[Int(piece[2])])
            } else if left <= right {  // the lower rank merges first; the left pair on a tie
                emit(left)
                emit(byteRanks[Int(piece[2])])
            } else {
                emit(byteRanks[Int(piece[0])])
                emit(right)
            }
            return
        }
        if n == 4 {
            encodeFour(piece, emit: emit)
            return
        }
        if n >= periodicFrom && n >= backtrackFrom && encodePeriodic(piece, n, emit: emit) { return }
        if n < backtrackFrom || (n < Self.churningBacktrackFrom && Self.isChurningASCII(piece, n))
            || !encodeBacktracking(piece, n, charCuts: charCuts, emit: emit)
        {
            encodeShort(piece, n, wholeIsToken: false, charCuts: charCuts, emit: emit)
        }
    }

    /// Whether the first 16 bytes of the piece look like random letters: ASCII, with at least two
    /// capitals and two small letters, and either
    /// - at least four of each and the case bit (0x20) differing between neighbours at least 5 times
    ///   in the 15 pairs: random letters (base64, keys, hashes) flip about every other letter, words
    ///   and identifiers (`FixedWidthInteger`, `NIOAsyncSequenceProducer`) at most twice per capital,
    ///   and have few of them; or
    /// - at most three vowels: random letters have one in five, words and identifiers one in three
    ///   or more.
    /// In cl100k, the first rule alone took 90% of base64's letter runs of 16 to 47 bytes and 162 of
    /// the 6,889 in the code corpus; either rule takes 97% and 221.
    ///
    /// Random letters make tokens of one to three bytes, so backtracking's longest match rarely stands
    /// and it keeps taking tokens back; tiktoken's scan, which only ever merges, is about twice as fast
    /// on them up to a few dozen bytes. Words make long tokens, which backtracking finds directly.
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

    /// tiktoken's scan unrolled for four bytes that are not a token: at most two merges, and the
    /// second can never make the whole piece. Ties go to the left pair, as in the scan.
    @inline(never)
    func encodeFour(_ p: UnsafePointer<UInt8>, emit: (UInt32) -> Void) {
        let r01 = pairRanks[Int(p[0]) << 8 | Int(p[1])]
        let r12 = pairRanks[Int(p[1]) << 8 | Int(p[2])]
        let r23 = pairRanks[Int(p[2]) << 8 | Int(p[3])]
        if r01 <= r12 && r01 <= r23 && r01 != UInt32.max {
            // ab c d: then abc (with its new rank) against cd.
            let abc = rank(p, 3)
            if abc <= r23 && abc != UInt32.max {
                emit(abc)
                emit(byteRanks[Int(p[3])])
            } else if r23 != UInt32.max {
                emit(r01)
                emit(r23)
            } else {
                emit(r01)
                emit(byteRanks[Int(p[2])])
                emit(byteRanks[Int(p[3])])
            }
        } else if r12 <= r23 && r12 != UInt32.max {
            // a bc d: then abc against bcd.
            let abc = rank(p, 3)
            let bcd = rank(p + 1, 3)
            if abc <= bcd && abc != UInt32.max {
                emit(abc)
                emit(byteRanks[Int(p[3])])
            } else if bcd != UInt32.max {
                emit(byteRanks[Int(p[0])])
                emit(bcd)
            } else {
                emit(byteRanks[Int(p[0])])
                emit(r12)
                emit(byteRanks[Int(p[3])])
            }
        } else if r23 != UInt32.max {
            // a b cd: then ab against bcd.
            let bcd = rank(p + 1, 3)
            if r01 <= bcd && r01 != UInt32.max {
                emit(r01)
                emit(r23)
            } else if bcd != UInt32.max {
                emit(byteRanks[Int(p[0])])
                emit(bcd)
            } else {
                emit(byteRanks[Int(p[0])])
                emit(byteRanks[Int(p[1])])
                emit(r23)
            }
        } else {
            for k in 0..<4 { emit(byteRanks[Int(p[k])]) }
        }
    }

    @inline(__always)
    func pairRank(
        _ parts: UnsafeMutableBufferPointer<(start: Int32, rank: UInt32, token: UInt32)>, _ count: Int, _ i: Int,
        _ piece: UnsafePointer<UInt8>
    ) -> UInt32 {
        guard i + 3 < count else { return UInt32.max }
        let start = Int(parts[i].start)
        return rank(piece + start, Int(parts[i + 3].start) - start)
    }

    /// tiktoken's scan: `parts[k]` holds a boundary, the rank of the pair starting there, and the token
    /// from there to the next boundary (kept as parts merge, so the result needs no more lookups).
    /// `wholeIsToken: false` says the caller has already found the whole piece is not a token, so the
    /// last pair (two parts that make up the piece) is not looked up again. `charCuts: true` (from
    /// ``merge(_:_:charCuts:emit:)``) first cuts the piece between CJK characters where
    /// ``charCutSearch`` says so; the scan itself is the reference in tests.
    func encodeShort(
        _ piece: UnsafePointer<UInt8>, _ n: Int, wholeIsToken: Bool = true, charCuts: Bool = false,
        emit: (UInt32) -> Void
    ) {
        if charCuts && searchesCharCuts(piece, n) && encodeAtCharCuts(piece, n, emit: emit) { return }
        withUnsafeTemporaryAllocation(of: (start: Int32, rank: UInt32, token: UInt32).self, capacity: n + 1) { parts in
            var count = n + 1
            for i in 0..<(n - 1) { parts[i] = (Int32(i), rank(piece + i, 2), byteRanks[Int(piece[i])]) }
            parts[n - 1] = (Int32(n - 1), UInt32.max, byteRanks[Int(piece[n - 1])])
            parts[n] = (Int32(n), UInt32.max, UInt32.max)

            // Not a nested function: capturing `count` (a var) would cost a dynamic exclusivity check
            // on every call.

            while count > 1 {
                var minRank = UInt32.max
                var minIndex = 0
                for i in 0..<(count - 1) where parts[i].rank < minRank {
                    minRank = parts[i].rank
                    minIndex = i
                }
                if minRank == UInt32.max { break }
                parts[minIndex].token = minRank
                if count == 4 && !wholeIsToken {
                    // Two parts are left, and the pair they make is the whole piece.
                    parts[minIndex].rank = UInt32.max
                    if minIndex > 0 { parts[minIndex - 1].rank = UInt32.max }
                } else {
                    parts[minIndex].rank = pairRank(parts, count, minIndex, piece)
                    if minIndex > 0 { parts[minIndex - 1].rank = pairRank(parts, count, minIndex - 1, piece) }
                }
                // Remove parts[minIndex + 1].
                for k in (minIndex + 1)..<(count - 1) { parts[k] = parts[k + 1] }
                count -= 1
            }
            for k in 0..<(count - 1) { emit(parts[k].token) }
        }
    }
}

extension BytePairEncoder {
    /// The longest reachable token that is a prefix of `p[0..<m]` (m ≥ 1): the candidate lengths come
    /// from the first three and six bytes, longest first.
    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ m: Int) -> UInt32 {
        if m >= 3, let index = BPEVocabulary.bmpIndex(p[0], p[1], p[2]),
            merges.bmpBeginsLonger.base[index >> 6] & (1 << UInt64(index & 63)) == 0
        {
            // A three-byte character that begins no longer token: it is a token itself, or its
            // first two bytes or its first byte begin the match.
            let r = vocabulary.bmpRanks.base[index]
            if r != UInt32.max && merges.length.base[Int(r)] != 0 { return r }
        } else if m >= 3, merges.mayBeginToken3(p) {
            let masks = merges.prefixMasks.base + 2 * Int(merges.prefixIndex.base[MergeTables.prefixSlot(p)])
            var low = masks[0]
            var high = masks[1]
            if m >= 6 {
                let six = MergeTables.sixBytes(p)
                if merges.mayBeginLongToken(six) {
                    let masks6 =
                        merges.prefixMasks.base + 2 * Int(merges.prefix6Index.base[MergeTables.prefixSlot6(six)])
                    low &= masks6[0] | 0b111  // lengths 3, 4 and 5 are not in the six-byte masks
                    high &= masks6[1]
                } else {
                    low &= 0b111
                    high = 0
                }
            }
            // Keep lengths ≤ m, i.e. bits ≤ m - 3.
            let top = m - 3
            if top < 64 {
                high = 0
                if top < 63 { low &= (1 << UInt64(top + 1)) - 1 }
            } else if top < 127 {
                high &= (1 << UInt64(top - 63)) - 1
            }
            let length = merges.length.base
            while high != 0 {
                let bit = 63 - high.leadingZeroBitCount
                let r = rank(p, 67 + bit)
                if r != UInt32.max && length[Int(r)] != 0 { return r }
                high &= ~(1 << UInt64(bit))
            }
            while low != 0 {
                let bit = 63 - low.leadingZeroBitCount
                let r = rank(p, 3 + bit)
                if r != UInt32.max && length[Int(r)] != 0 { return r }
                low &= ~(1 << UInt64(bit))
            }
        }
        if m >= 2 {
            // Two-byte tokens are always reachable.
            let r = pairRanks[Int(p[0]) << 8 | Int(p[1])]
            if r != UInt32.max { return r }
        }
        return byteRanks[Int(p[0])]
    }

    /// The first token from `token` down its chain of shorter prefixes (``MergeTables/nextPrefix``)
    /// that may follow `last` (``MergeTables/isValidPair(_:_:)``), or `UInt32.max` when none may;
    /// remembered in the ``pairMemo``. Out of line: only a churning piece asks, and inlined it cost
    /// ordinary long pieces (CJK) several percent.
    @inline(never)
    func firstValid(after last: UInt32, from token: UInt32, memo: UnsafeMutablePointer<UInt64>) -> UInt32 {
        if memo[0] == 0 {
            (memo + 1).initialize(repeating: .max, count: Self.pairMemoSlots)
            memo[0] = 1
        }
        // Ranks are under 2^21 (MergeTables): the key takes 42 bits and the answer the 21 above them,
        // with 2^21 - 1 for none. An empty slot (all ones) matches no key.
        let key = UInt64(last) << 21 | UInt64(token)
        var h = key &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ h >> 32) &* 0xD6E8_FEB8_6659_FD93  // both halves of the key reach the top bits
        let ways = memo + 1 + 4 * Int(truncatingIfNeeded: h >> 55)  // 512 sets
        for way in 0..<4 where ways[way] & Self.memoKeyBits == key {
            let answer = UInt32(truncatingIfNeeded: ways[way] >> 42)
            return answer == Self.memoNone ? UInt32.max : answer
        }
        return rememberFirstValid(after: last, from: token, key: key, ways: ways)
    }

    static let memoKeyBits: UInt64 = 1 << 42 - 1
    static let memoNone: UInt32 = 1 << 21 - 1

    /// Walks the chain, and keeps the answer as the set's most recent way.
    @inline(never)
    func rememberFirstValid(
        after last: UInt32, from token: UInt32, key: UInt64, ways: UnsafeMutablePointer<UInt64>
    ) -> UInt32 {
        var t = token
        while t != UInt32.max && !merges.isValidPair(last, t) { t = merges.nextPrefix.base[Int(t)] }
        ways[3] = ways[2]
        ways[2] = ways[1]
        ways[1] = ways[0]
        ways[0] = key | UInt64(t == UInt32.max ? Self.memoNone : t) << 42
        return t
    }

    /// A long piece that repeats one short unit (a megabyte of `/`, of space-tab, of `'`): encodes a
    /// sample from its start, finds the block of tokens the sample repeats, and emits that block as
    /// often as it fits before a tail, which is encoded on its own. Returns false, having emitted
    /// nothing, when the piece is not such a run or the result cannot be shown right.
    ///
    /// The result is checked, not assumed: every two neighbours in it are a valid pair (inside the
    /// block and the tail by construction; block after block because the sample has it; block before
    /// tail by asking), and the tokenization in which every two neighbours are valid is the BPE
    /// result, the same fact ``encodeBacktracking(_:_:emit:)`` rests on. Such runs are where
    /// backtracking works hardest: it takes back nearly a token per byte (40 ms for a megabyte of `/`).
    @inline(never)
    func encodePeriodic(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        // The shortest unit the first 64 bytes repeat. If the whole piece repeats a unit of up to 16
        // bytes, it repeats this one too (its length divides that unit's, by Fine and Wilf).
        guard n >= 2 * Self.periodicSample,
            let period = (1...Self.longestPeriod).first(where: { memcmp(piece, piece + $0, 64) == 0 }),
            memcmp(piece, piece + period, n - period) == 0
        else { return false }
        func tokens(_ start: Int, _ length: Int) -> [UInt32]? {
            var out: [UInt32] = []
            guard encodeBacktracking(piece + start, length, emit: { out.append($0) }) else { return nil }
            return out
        }
        // The sample, a whole number of units. It may begin with a few tokens of its own (the head:
        // runs of space-tab begin with a lone space); then comes a block, the shortest run of tokens
        // that covers a whole number of units and that the sample repeats right after.
        let sampleLength = Self.periodicSample / period * period
        guard let sample = tokens(0, sampleLength) else { return false }
        let length = merges.length.base
        var found: (head: Int, headBytes: Int, count: Int, bytes: Int)?
        var headBytes = 0
        search: for head in 0..<min(8, sample.count) {
            var count = 0
            var bytes = 0
            while bytes <= sampleLength / 4 && head + 2 * (count + 1) <= sample.count {
                bytes += Int(length[Int(sample[head + count])])
                count += 1
                let first = head..<(head + count)
                if bytes % period == 0 && sample[(head + count)..<(head + 2 * count)] == sample[first] {
                    found = (head, headBytes, count, bytes)
                    break search
                }
            }
            headBytes += Int(length[Int(sample[head])])
        }
        guard let block = found else { return false }
        // The tail: at least as long as the sample, so that it holds whatever the end of the piece does
        // differently, encoded on its own.
        let repeats = (n - block.headBytes - sampleLength) / block.bytes
        let tailStart = block.headBytes + repeats * block.bytes
        guard repeats > 0, let tail = tokens(tailStart, n - tailStart),
            merges.isValidPair(sample[block.head + block.count - 1], tail[0])
        else { return false }
        for k in 0..<block.head { emit(sample[k]) }
        for _ in 0..<repeats {
            for k in block.head..<(block.head + block.count) { emit(sample[k]) }
        }
        for token in tail { emit(token) }
        return true
    }

    /// The backtracking encoder (after GitHub's rust-gems `bpe` crate; our own implementation).
    ///
    /// A BPE result is the one tokenization in which every two neighbours are a valid pair
    /// (``MergeTables/isValidPair``). Build it left to right: take the longest token that fits; if it
    /// cannot follow the previous token, try the next shorter prefix token; when none can, the position
    /// is a dead end — mark it so and take back the previous token. Each position is abandoned at most
    /// once, so the work is linear in the piece. Emits nothing and returns false if the tables ever
    /// fail to find an encoding (they never should), so the caller can fall back to merging.
    /// `charCuts: true` first cuts the piece between CJK characters, as in
    /// ``encodeShort(_:_:wholeIsToken:charCuts:emit:)``.
    func encodeBacktracking(
        _ piece: UnsafePointer<UInt8>, _ n: Int, charCuts: Bool = false, emit: (UInt32) -> Void
    ) -> Bool {
        if charCuts && searchesCharCuts(piece, n) && encodeAtCharCuts(piece, n, emit: emit) { return true }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: n) { stack in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n / 64 + 1) { live in
                for w in 0..<(n / 64 + 1) { live[w] = ~0 }
                let length = merges.length.base
                let nextPrefix = merges.nextPrefix.base
                var count = 0
                var pos = 0
                var misses = 0  // candidates refused
                let memo = pairMemo
                var next = longestMatch(piece, n)
                while next != UInt32.max {
                    var token = next
                    let last = count > 0 ? stack[count - 1] : UInt32.max
                    var canFollow = count == 0  // `token` is known to be able to follow `last`
                    while token != UInt32.max {
                        let end = pos + Int(length[Int(token)])
                        if live[end >> 6] & (1 << UInt64(end & 63)) != 0 {
                            if !canFollow, misses &* Self.memoMissSpacing > pos, let memo {
                                // Skip straight to the first candidate from here down that may follow.
                                let first = firstValid(after: last, from: token, memo: memo)
                                canFollow = true
                                if first != token {
                                    misses += 1
                                    token = first
                                    continue
                                }
                            }
                            if canFollow || merges.isValidPair(last, token) {
                                stack[count] = token
                                count += 1
                                pos = end
                                next = pos < n ? longestMatch(piece + pos, n - pos) : UInt32.max
                                break
                            }
                        }
                        misses += 1
                        token = nextPrefix[Int(token)]
                        canFollow = count == 0
                    }
                    if token == UInt32.max {
                        // No candidate: a dead end. Take the last token back.
                        guard count > 0 else { return false }
                        live[pos >> 6] &= ~(1 << UInt64(pos & 63))
                        count -= 1
                        pos -= Int(length[Int(last)])
                        next = last
                    }
                }
                for i in 0..<count { emit(stack[i]) }
                return true
            }
        }
    }
}
