/// The backtracking encoder, for pieces too long for tiktoken's quadratic scan: linear in the piece,
/// however long a hostile input makes it (a megabyte of one letter is one piece).
extension BytePairEncoder {
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

    // MARK: The pair memo

    static let pairMemoSlots = 2048
    /// The memo is consulted while a piece has had more than one refused candidate per this many bytes.
    static let memoMissSpacing = 4
    /// Texts shorter than this encode without the memo: they cannot make the encoder churn for long.
    static let pairMemoFromBytes = 1024

    /// The first token from `token` down its chain of shorter prefixes (``MergeTables/nextPrefix``)
    /// that may follow `last` (``MergeTables/isValidPair(_:_:)``), or `UInt32.max` when none may;
    /// remembered in the ``pairMemo``.
    ///
    /// Backtracking through a repetitive piece (a run of `/`, whose longest match never stands) asks
    /// the same few questions over and over, and a refused run of candidates is then skipped in one
    /// step. On ordinary text the longest match nearly always stands and questions seldom repeat, so
    /// the encoder asks only while refusals are frequent (``memoMissSpacing``). Out of line: only a
    /// churning piece asks, and inlined it slowed ordinary long pieces (CJK).
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

    /// Walks the chain, and keeps the answer as the set's most recent way. Four ways per set: with one
    /// or two, the few keys that share a set kept evicting each other.
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
}
