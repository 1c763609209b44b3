/// Hugging Face's byte-level BPE on one piece: start from the bytes' tokens and repeatedly join the
/// adjacent pair whose merge has the lowest rank, the leftmost on a tie, until no listed pair is left
/// (``ByteLevelVocabulary``).
///
/// A piece that is a token is that token: every token of DeepSeek's vocabulary is what merging its
/// own bytes makes (a test checks all of them), so the lookup is exact. Short pieces are merged by a
/// scan for the lowest rank, quadratic but fastest for a few dozen bytes; long ones by
/// ``mergeLong(_:_:emit:)``, linear.
struct PairMerger {
    let vocabulary: ByteLevelVocabulary
    let byteTokens: UnsafePointer<UInt32>
    let lefts: UnsafePointer<UInt32>
    let rights: UnsafePointer<UInt32>
    let firstMerge: UInt32
    let mergeCount: Int
    let table: UnsafeBufferPointer<BPEVocabulary.Slot>
    let tokenBytes: UnsafeBufferPointer<UInt8>
    /// Pieces at least this long are merged by ``mergeLong(_:_:emit:)``.
    var longFrom = Self.defaultLongFrom

    static let defaultLongFrom = 96

    /// `tokenBytes` is `vocabulary.tokens.bytes`, which the caller holds.
    init(vocabulary: ByteLevelVocabulary, tokenBytes: UnsafeBufferPointer<UInt8>) {
        self.vocabulary = vocabulary
        self.byteTokens = vocabulary.byteTokens.base
        self.lefts = vocabulary.lefts.base
        self.rights = vocabulary.rights.base
        self.firstMerge = vocabulary.firstMerge
        self.mergeCount = vocabulary.lefts.count
        self.table = vocabulary.tokens.table.buffer
        self.tokenBytes = tokenBytes
    }

    /// Emits the tokens of `piece[0..<n]` (n ≥ 1) in order.
    @inline(__always)
    func encode(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n == 1 {
            emit(byteTokens[Int(piece[0])])
            return
        }
        let whole = vocabulary.tokens.rank(piece, n, table: table, bytes: tokenBytes)
        if whole != UInt32.max {
            emit(whole &+ vocabulary.tokenBase)
            return
        }
        if n >= longFrom {
            mergeLong(piece, n, emit: emit)
        } else {
            mergeShort(piece, n, emit: emit)
        }
    }

    @inline(__always)
    func pairRank(_ left: UInt32, _ right: UInt32) -> UInt32 { vocabulary.pairRank(left, right) }

    /// The scan: each round finds the lowest rank among the current pairs (the first of equals, as
    /// Hugging Face's queue takes the lowest position) and joins that pair; only its two neighbours'
    /// ranks change.
    @inline(never)
    func mergeShort(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * n) { buffer in
            let ids = buffer.baseAddress!
            let ranks = ids + n
            for k in 0..<n { ids[k] = byteTokens[Int(piece[k])] }
            for k in 0..<(n - 1) { ranks[k] = pairRank(ids[k], ids[k + 1]) }
            var count = n
            while count > 1 {
                var best = UInt32.max
                var at = 0
                for k in 0..<(count - 1) where ranks[k] < best {
                    best = ranks[k]
                    at = k
                }
                if best == UInt32.max { break }
                ids[at] = firstMerge &+ best
                count -= 1
                var k = at + 1
                while k < count {
                    ids[k] = ids[k + 1]
                    ranks[k] = ranks[k + 1]
                    k += 1
                }
                if at + 1 < count { ranks[at] = pairRank(ids[at], ids[at + 1]) }
                if at > 0 { ranks[at - 1] = pairRank(ids[at - 1], ids[at]) }
            }
            for k in 0..<count { emit(ids[k]) }
        }
    }
}

extension PairMerger {
    /// Linear merging for long pieces (a megabyte of one letter is one piece). A merge only ever
    /// joins tokens made by earlier merges (``ByteLevelVocabulary`` checks that when it loads), so
    /// every pair a merge creates has a higher rank than the merge itself: the ranks taken never go
    /// down. The pairs wait in one bucket per rank, found through a bitmap of the non-empty ones that
    /// is read forward once; the symbols are a doubly linked list over byte positions.
    ///
    /// Within one rank only a pair of two equal tokens can overlap another (`a a a`); there the
    /// leftmost pair must go first, so each run of that token is paired from its start, once.
    /// A bucket entry whose pair has changed since it was queued is skipped, as Hugging Face skips
    /// expired queue entries.
    @inline(never)
    func mergeLong(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        let words = (mergeCount + 63) >> 6
        // ids, next and previous positions (n each), queue entries (3n: the first pairs and two per
        // merge), bucket heads (one per rank, read only where the bitmap says the bucket is in use).
        let layout = (ids: 0, next: n, previous: 2 * n, heads: 3 * n, entries: 3 * n + mergeCount)
        let count32 = layout.entries
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: count32 * 4 + 3 * n * 8 + words * 8, alignment: 8)
        defer { raw.deallocate() }
        let ids = raw.bindMemory(to: UInt32.self, capacity: count32)
        let next = UnsafeMutableRawPointer(ids + layout.next).assumingMemoryBound(to: Int32.self)
        let previous = UnsafeMutableRawPointer(ids + layout.previous).assumingMemoryBound(to: Int32.self)
        let heads = UnsafeMutableRawPointer(ids + layout.heads).assumingMemoryBound(to: Int32.self)
        let entries = (raw + count32 * 4).bindMemory(to: UInt64.self, capacity: 3 * n)
        let bits = (raw + count32 * 4 + 3 * n * 8).bindMemory(to: UInt64.self, capacity: words)
        bits.initialize(repeating: 0, count: words)
        var entryCount = 0
        /// Queues the pair at `position` under `rank`: entry = position << 32 | the bucket's previous head.
        @inline(__always) func push(_ position: Int, _ rank: UInt32) {
            let r = Int(rank)
            let inUse = bits[r >> 6] >> UInt64(r & 63) & 1 != 0
            let link = inUse ? UInt32(bitPattern: heads[r]) : UInt32.max
            entries[entryCount] = UInt64(position) << 32 | UInt64(link)
            heads[r] = Int32(truncatingIfNeeded: entryCount)
            bits[r >> 6] |= 1 << UInt64(r & 63)
            entryCount += 1
        }
        for k in 0..<n {
            ids[k] = byteTokens[Int(piece[k])]
            next[k] = k + 1 < n ? Int32(k + 1) : -1
            previous[k] = Int32(k - 1)
        }
        for k in 0..<(n - 1) {
            let rank = pairRank(ids[k], ids[k + 1])
            if rank != UInt32.max { push(k, rank) }
        }
        /// Joins the symbol at `x` with the one after it, `y`, into `merged`, and queues the new pairs.
        @inline(__always) func join(_ x: Int, _ y: Int, into merged: UInt32) {
            ids[x] = merged
            ids[y] = UInt32.max
            let after = next[y]
            next[x] = after
            if after >= 0 {
                previous[Int(after)] = Int32(x)
                let rank = pairRank(merged, ids[Int(after)])
                if rank != UInt32.max { push(x, rank) }
            }
            let before = previous[x]
            if before >= 0 {
                let rank = pairRank(ids[Int(before)], merged)
                if rank != UInt32.max { push(Int(before), rank) }
            }
        }
        var word = 0
        while word < words {
            let w = bits[word]
            if w == 0 {
                word += 1
                continue
            }
            let r = word << 6 | w.trailingZeroBitCount
            bits[word] = w & (w &- 1)
            let (left, right, merged) = (lefts[r], rights[r], firstMerge &+ UInt32(r))
            var e = UInt32(bitPattern: heads[r])
            while e != UInt32.max {
                let entry = entries[Int(e)]
                e = UInt32(truncatingIfNeeded: entry)
                var x = Int(entry >> 32)
                guard ids[x] == left, next[x] >= 0, ids[Int(next[x])] == right else { continue }
                if left != right {
                    join(x, Int(next[x]), into: merged)
                    continue
                }
                while previous[x] >= 0 && ids[Int(previous[x])] == left { x = Int(previous[x]) }
                while x >= 0 && ids[x] == left && next[x] >= 0 && ids[Int(next[x])] == left {
                    join(x, Int(next[x]), into: merged)
                    x = Int(next[x])
                }
            }
        }
        var k = 0
        while k >= 0 {
            emit(ids[k])
            k = Int(next[k])
        }
    }
}
