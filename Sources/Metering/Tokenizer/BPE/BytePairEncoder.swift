import Foundation

/// Byte-pair merging of one piece, as tiktoken does it: repeatedly join the adjacent pair whose bytes
/// have the lowest rank, leftmost first on ties.
///
/// ``encode(_:_:emit:)`` and ``merge(_:_:charCuts:emit:)`` choose a strategy by the piece's length
/// and bytes; each strategy has its own file in this folder:
/// - `ShortPieces.swift`: two to four bytes unrolled, and tiktoken's own scan for the other short
///   pieces (also the reference the tests check every other strategy against);
/// - `Backtracking.swift`: long pieces (CJK clauses, long words, hostile runs) in linear time;
/// - `PeriodicRuns.swift`: long runs of one short unit (a megabyte of `/`);
/// - `Cuts.swift` and `CharacterCuts.swift`: pieces split where no token can span a boundary;
/// - `EncodedText.swift`: whole texts that look like encoded data (base64, keys, hashes).
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
    /// The memo of ``firstValid(after:from:memo:)`` for the text being encoded, or nil to ask the
    /// merge tables every time. `1 + pairMemoSlots` words: the first says whether the rest are set up
    /// (0 until a piece first needs them); each of the rest holds `last << 21 | token` with the answer
    /// above it, or `UInt64.max` when empty, in sets of four ways, the most recent first.
    var pairMemo: UnsafeMutablePointer<UInt64>? = nil
    /// Pieces at least this long that repeat a unit of up to ``longestPeriod`` bytes are encoded by
    /// ``encodePeriodic(_:_:emit:)`` (`Int.max`: never).
    var periodicFrom = Self.defaultPeriodicFrom
    /// Whether text that looks like encoded data is searched for cuts (cl100k, qwen), or its lookups
    /// screened instead (o200k: ``EncodedText.swift``).
    var searchesCuts = true
    /// Which pieces that end in a non-ASCII byte are searched for cuts between three-byte characters
    /// (``searchesCharCuts(_:_:)``). One byte, in the padding after ``searchesCuts``: an `Int`
    /// threshold here slowed the loops over short pieces.
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

    static let defaultBacktrackFrom = 16
    /// ASCII pieces whose case flips often (``isChurningASCII(_:_:)``) are merged by the scan below this
    /// length, and backtracked from it.
    static let churningBacktrackFrom = 48

    @inline(__always)
    func rank(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        vocabulary.rank(p, n, table: table, bytes: bytes)
    }

    /// Emits the ranks of `piece[0..<n]` in order: tiktoken looks a whole piece up first.
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

    /// Emits the ranks of `piece[0..<n]` (n ≥ 2), which is not a token BPE can make, by merging.
    /// `charCuts: false` skips the search for cuts between CJK characters (``charCutSearch``): for a
    /// part between such cuts, already searched, and for the ASCII pieces of encoded data, where the
    /// test would only cost time.
    @inline(__always)
    func merge(_ piece: UnsafePointer<UInt8>, _ n: Int, charCuts: Bool = true, emit: (UInt32) -> Void) {
        // Up to four bytes, the pair ranks decide the merges without a scan.
        if n == 2 {
            emit(byteRanks[Int(piece[0])])
            emit(byteRanks[Int(piece[1])])
            return
        }
        if n == 3 {
            encodeThree(piece, emit: emit)
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
}
