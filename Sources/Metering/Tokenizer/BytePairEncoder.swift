/// Byte-pair merging of one piece: repeatedly join the adjacent pair whose bytes have the lowest rank,
/// leftmost first on ties, as tiktoken does.
///
/// Short pieces use tiktoken's array scan (fastest for the usual few bytes). Long pieces, which a
/// hostile or unusual input can make arbitrarily long (a megabyte of one letter is one piece), use a
/// heap over a linked list: O(n log n), never quadratic.
struct BytePairEncoder {
    let vocabulary: BPEVocabulary
    let table: UnsafeBufferPointer<BPEVocabulary.Slot>
    let bytes: UnsafeBufferPointer<UInt8>

    static let longPiece = 64

    @inline(__always)
    func rank(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        vocabulary.rank(p, n, table: table, bytes: bytes)
    }

    /// Emits the ranks of `piece[0..<n]` in order.
    @inline(__always)
    func encode(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if n == 1 {
            emit(vocabulary.byteRanks[Int(piece[0])])
            return
        }
        let whole = rank(piece, n)
        if whole != UInt32.max {
            emit(whole)
            return
        }
        if n < Self.longPiece {
            encodeShort(piece, n, emit: emit)
        } else {
            encodeLong(piece, n, emit: emit)
        }
    }

    @inline(__always)
    func pairRank(
        _ parts: UnsafeMutableBufferPointer<(start: Int32, rank: UInt32)>, _ count: Int, _ i: Int,
        _ piece: UnsafePointer<UInt8>
    ) -> UInt32 {
        guard i + 3 < count else { return UInt32.max }
        let start = Int(parts[i].start)
        return rank(piece + start, Int(parts[i + 3].start) - start)
    }

    /// The rank of symbol `i` joined with its successor.
    @inline(__always)
    func joinedRank(_ symbols: UnsafeMutableBufferPointer<Symbol>, _ i: Int, _ piece: UnsafePointer<UInt8>, _ n: Int)
        -> UInt32
    {
        let j = Int(symbols[i].next)
        guard j < n else { return UInt32.max }
        return rank(piece + i, Int(symbols[j].next) - i)
    }

    /// tiktoken's scan: `parts[k]` holds a boundary and the rank of the pair starting there.
    func encodeShort(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        withUnsafeTemporaryAllocation(of: (start: Int32, rank: UInt32).self, capacity: n + 1) { parts in
            var count = n + 1
            for i in 0..<(n - 1) { parts[i] = (Int32(i), rank(piece + i, 2)) }
            parts[n - 1] = (Int32(n - 1), UInt32.max)
            parts[n] = (Int32(n), UInt32.max)

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
                parts[minIndex].rank = pairRank(parts, count, minIndex, piece)
                if minIndex > 0 { parts[minIndex - 1].rank = pairRank(parts, count, minIndex - 1, piece) }
                // Remove parts[minIndex + 1].
                for k in (minIndex + 1)..<(count - 1) { parts[k] = parts[k + 1] }
                count -= 1
            }
            for k in 0..<(count - 1) {
                let start = Int(parts[k].start)
                emit(rank(piece + start, Int(parts[k + 1].start) - start))
            }
        }
    }

    /// One symbol per byte, linked, in one record so a merge at a random position costs one cache
    /// miss: `next`/`prev` are the neighbours of a live symbol (a dead one has `next > n`), `pair` the
    /// rank of the symbol joined with its successor.
    struct Symbol {
        var next: Int32
        var prev: Int32
        var pair: UInt32
    }

    static func symbolList(_ n: Int) -> [Symbol] {
        [Symbol](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Symbol(next: Int32(i + 1), prev: Int32(i - 1), pair: UInt32.max) }
            c = n
        }
    }

    /// Long pieces: rank buckets first (linear in practice), the heap when a vocabulary breaks the
    /// property the buckets rely on.
    func encodeLong(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        if encodeLongByRankBuckets(piece, n, emit: emit) { return }
        encodeLongWithHeap(piece, n, emit: emit)
    }

    /// Processes merges rank by rank, each rank's positions left to right.
    ///
    /// Exact whenever every pair created by a merge ranks above the merge that created it — true of
    /// BPE-trained vocabularies, where a token is always newer than its parts. Then the lowest rank
    /// present stays the lowest until its bucket is done, which is tiktoken's order (lowest rank,
    /// leftmost first). If a lower rank ever appears, this returns false before emitting anything and
    /// the caller uses the heap.
    func encodeLongByRankBuckets(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        var symbolArray = Self.symbolList(n)
        var queue = RankBuckets(expected: n)
        var positions: [Int32] = []
        let completed = symbolArray.withUnsafeMutableBufferPointer { symbols -> Bool in
            for i in 0..<(n - 1) {
                let r = rank(piece + i, 2)
                symbols[i].pair = r
                if r != UInt32.max { queue.append(rank: r, position: Int32(i)) }
            }
            while let r = queue.popLowest(into: &positions) {
                for position in positions {
                    let i = Int(position)
                    guard symbols[i].pair == r, symbols[i].next <= n else { continue }
                    Self.mergeSuccessor(into: i, symbols, n: n)
                    let ri = joinedRank(symbols, i, piece, n)
                    symbols[i].pair = ri
                    if ri != UInt32.max {
                        if ri < r { return false }
                        queue.append(rank: ri, position: Int32(i))
                    }
                    let p = Int(symbols[i].prev)
                    if p >= 0 {
                        let rp = joinedRank(symbols, p, piece, n)
                        symbols[p].pair = rp
                        if rp != UInt32.max {
                            if rp < r { return false }
                            queue.append(rank: rp, position: Int32(p))
                        }
                    }
                }
            }
            return true
        }
        guard completed else { return false }
        emitSymbols(piece, n, symbolArray, emit: emit)
        return true
    }

    /// Merges symbol i's successor into i.
    @inline(__always)
    static func mergeSuccessor(into i: Int, _ symbols: UnsafeMutableBufferPointer<Symbol>, n: Int) {
        let j = Int(symbols[i].next)
        let k = Int(symbols[j].next)
        symbols[i].next = Int32(k)
        if k < n { symbols[k].prev = Int32(i) }
        symbols[j].next = Int32(n + 1)
        symbols[j].pair = UInt32.max
    }

    func emitSymbols(_ piece: UnsafePointer<UInt8>, _ n: Int, _ symbols: [Symbol], emit: (UInt32) -> Void) {
        var i = 0
        while i < n {
            let j = Int(symbols[i].next)
            emit(rank(piece + i, j - i))
            i = j
        }
    }

    /// Heap of (rank, start) over the symbol list; stale heap entries are skipped.
    func encodeLongWithHeap(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        var symbolArray = Self.symbolList(n)
        symbolArray.withUnsafeMutableBufferPointer { symbols in
            var heap: [UInt64] = []
            heap.reserveCapacity(n)
            for i in 0..<(n - 1) {
                let r = rank(piece + i, 2)
                symbols[i].pair = r
                if r != UInt32.max { heap.append(UInt64(r) << 32 | UInt64(i)) }
            }
            var minHeap = MinHeap(storage: heap)
            while let top = minHeap.pop() {
                let r = UInt32(top >> 32)
                let i = Int(top & 0xFFFF_FFFF)
                guard symbols[i].pair == r, symbols[i].next <= n else { continue }
                Self.mergeSuccessor(into: i, symbols, n: n)
                let ri = joinedRank(symbols, i, piece, n)
                symbols[i].pair = ri
                if ri != UInt32.max { minHeap.push(UInt64(ri) << 32 | UInt64(i)) }
                let p = Int(symbols[i].prev)
                if p >= 0 {
                    let rp = joinedRank(symbols, p, piece, n)
                    symbols[p].pair = rp
                    if rp != UInt32.max { minHeap.push(UInt64(rp) << 32 | UInt64(p)) }
                }
            }
        }
        emitSymbols(piece, n, symbolArray, emit: emit)
    }
}

/// A binary min-heap of packed (rank << 32 | position) keys: smallest rank first, then leftmost.
struct MinHeap {
    var storage: [UInt64]

    init(storage: [UInt64]) {
        self.storage = storage
        if storage.count > 1 {
            for i in stride(from: storage.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        }
    }

    mutating func push(_ v: UInt64) {
        storage.append(v)
        var i = storage.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if storage[parent] <= v { break }
            storage[i] = storage[parent]
            i = parent
        }
        storage[i] = v
    }

    mutating func pop() -> UInt64? {
        guard let last = storage.popLast() else { return nil }
        guard !storage.isEmpty else { return last }
        let top = storage[0]
        storage[0] = last
        siftDown(0)
        return top
    }

    mutating func siftDown(_ start: Int) {
        let count = storage.count
        var i = start
        let v = storage[i]
        while true {
            var child = 2 * i + 1
            if child >= count { break }
            if child + 1 < count && storage[child + 1] < storage[child] { child += 1 }
            if storage[child] >= v { break }
            storage[i] = storage[child]
            i = child
        }
        storage[i] = v
    }
}

/// Positions grouped by rank, handed out lowest rank first, each group in position order.
///
/// Flat arrays instead of a dictionary of arrays: an open-addressed map from rank to bucket, and
/// buckets as linked lists of entries. A rank is never appended to after its bucket was handed out
/// (ranks only rise), so the map never needs deletion.
struct RankBuckets {
    /// (rank + 1) << 32 | bucket; 0 is empty.
    private var slots: [UInt64]
    private var shift: UInt64
    private var bucketRank: [UInt32] = []
    private var bucketHead: [Int32] = []
    private var bucketTail: [Int32] = []
    /// position << 32 | next entry (UInt32.max: none), one record per entry.
    private var entries: [UInt64] = []
    private var pending = MinHeap(storage: [])

    init(expected: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < min(expected, 1 << 22) * 2 { bits += 1 }
        slots = [UInt64](repeating: 0, count: 1 << Int(bits))
        shift = 64 - bits
        entries.reserveCapacity(expected)
    }

    mutating func append(rank: UInt32, position: Int32) {
        let mask = slots.count - 1
        var slot = Int((UInt64(rank) &* 0x9E37_79B9_7F4A_7C15) >> shift)
        var bucket = -1
        while true {
            let v = slots[slot]
            if v == 0 {
                bucket = bucketRank.count
                slots[slot] = (UInt64(rank) + 1) << 32 | UInt64(bucket)
                bucketRank.append(rank)
                bucketHead.append(-1)
                bucketTail.append(-1)
                pending.push(UInt64(rank) << 32 | UInt64(bucket))
                if bucketRank.count * 2 > slots.count { grow() }
                break
            }
            if v >> 32 == UInt64(rank) + 1 {
                bucket = Int(v & 0xFFFF_FFFF)
                break
            }
            slot = (slot + 1) & mask
        }
        let entry = Int32(entries.count)
        entries.append(UInt64(UInt32(bitPattern: position)) << 32 | 0xFFFF_FFFF)
        let tail = bucketTail[bucket]
        if tail >= 0 {
            entries[Int(tail)] = entries[Int(tail)] & 0xFFFF_FFFF_0000_0000 | UInt64(UInt32(entry))
        } else {
            bucketHead[bucket] = entry
        }
        bucketTail[bucket] = entry
    }

    private mutating func grow() {
        let old = slots
        let bits = 64 - shift + 1
        slots = [UInt64](repeating: 0, count: 1 << Int(bits))
        let newShift = 64 - bits
        let mask = slots.count - 1
        for v in old where v != 0 {
            let rank = (v >> 32) - 1
            var slot = Int((rank &* 0x9E37_79B9_7F4A_7C15) >> newShift)
            while slots[slot] != 0 { slot = (slot + 1) & mask }
            slots[slot] = v
        }
        shift = newShift
    }

    /// Fills `positions` with the lowest rank's positions in ascending order and returns that rank.
    mutating func popLowest(into positions: inout [Int32]) -> UInt32? {
        guard let top = pending.pop() else { return nil }
        let bucket = Int(top & 0xFFFF_FFFF)
        positions.removeAll(keepingCapacity: true)
        var e = Int(bucketHead[bucket])
        var sorted = true
        var last: Int32 = -1
        while e >= 0 {
            let record = entries[e]
            let p = Int32(bitPattern: UInt32(record >> 32))
            if last > p { sorted = false }
            last = p
            positions.append(p)
            let next = UInt32(record & 0xFFFF_FFFF)
            e = next == UInt32.max ? -1 : Int(next)
        }
        // Appends come in left-to-right sweeps of earlier ranks, so this is usually sorted already.
        if !sorted { positions.sort() }
        return bucketRank[bucket]
    }
}
