/// Cuts in random letters: boundaries of a piece across which BPE can never merge
/// (``MergeTables/cutScan(_:_:)``), so that the parts between them merge on their own, to the same
/// result, in a few lookups each. Random letters have one every two or three bytes; words nearly none.
extension BytePairEncoder {
    /// ``encode(_:_:emit:)`` for the pieces of text that looks like encoded data (``looksEncoded(_:)``)
    /// that ``encodeText(encoded:emit:tokenCount:)`` does not take run by run: a piece that holds a
    /// capital after its first two bytes is searched for cuts first. Only in such text: on prose and
    /// code, the test on every piece cost more than the cuts saved.
    @inline(__always)
    func encodeSearchingCuts(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n >= 4 && Self.hasInnerCapital(piece, n) {
            encodeMixedCase(piece, n, emit: emit)
        } else {
            encode(piece, n, emit: emit)
        }
    }

    /// Whether the last four bytes of the piece (n ≥ 4) that come after its first two hold a capital
    /// letter: four random letters have one 15 times in 16; words (` The`, `Hello`) do not. One load
    /// and no branch: the lengths of words are too varied to predict.
    @inline(__always)
    static func hasInnerCapital(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let last = UInt32(littleEndian: UnsafeRawPointer(p + n - 4).loadUnaligned(as: UInt32.self))
        let inner = last >> UInt32(8 * (6 - min(n, 6)))  // shifts out bytes 0 and 1 when n < 6
        return Pretokenizer.letterMask(UInt64(inner), true, false) != 0
    }

    /// ``encode(_:_:emit:)`` for a piece with a capital after its first two bytes, out of line so that
    /// the common path stays small. A piece with a cut is no token (a token holds every pair and
    /// triple of its bytes), so the search for cuts comes first and spares the lookup of the whole
    /// piece.
    @inline(never)
    func encodeMixedCase(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if !encodeAtCuts(piece, n, emit: emit) { encodeUncut(piece, n, isPiece: true, emit: emit) }
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

    /// Emits the ranks of a whole piece (`isPiece`) or of a part of one (``encodeAtCuts(_:_:emit:)``,
    /// ``encodeAtCharCuts(_:_:emit:)``) of two bytes or more, as ``encode(_:_:emit:)`` does, without
    /// searching it for cuts of either kind. A part is one token only if BPE can make it: tiktoken's
    /// lookup of the whole piece does not apply to it.
    @inline(never)
    func encodeUncut(_ piece: UnsafePointer<UInt8>, _ n: Int, isPiece: Bool, emit: (UInt32) -> Void) {
        let whole = rank(piece, n)
        if whole != UInt32.max && (isPiece || merges.length.base[Int(whole)] != 0) {
            emit(whole)
            return
        }
        merge(piece, n, charCuts: false, emit: emit)
    }
}
