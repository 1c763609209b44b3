/// Pieces of a few bytes: the merges unrolled for three and four bytes, and tiktoken's own scan, which
/// is quadratic but the fastest for a few bytes, and the reference the other strategies are tested
/// against.
extension BytePairEncoder {
    /// Three bytes that are not a token merge at most once: the lower pair rank wins, the left pair on
    /// a tie.
    @inline(__always)
    func encodeThree(_ piece: UnsafePointer<UInt8>, emit: (UInt32) -> Void) {
        let left = pairRanks[Int(piece[0]) << 8 | Int(piece[1])]
        let right = pairRanks[Int(piece[1]) << 8 | Int(piece[2])]
        if left == UInt32.max && right == UInt32.max {
            emit(byteRanks[Int(piece[0])])
            emit(byteRanks[Int(piece[1])])
            emit(byteRanks[Int(piece[2])])
        } else if left <= right {
            emit(left)
            emit(byteRanks[Int(piece[2])])
        } else {
            emit(byteRanks[Int(piece[0])])
            emit(right)
        }
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

    /// The rank of the pair of parts from `parts[i]`, in ``encodeShort(_:_:wholeIsToken:charCuts:emit:)``.
    /// A method rather than a nested function: capturing the scan's `count` (a var) would cost a
    /// dynamic exclusivity check on every call.
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
