/// Byte-pair merging of one piece: repeatedly join the adjacent pair whose bytes have the lowest rank,
/// leftmost first on ties, as tiktoken does.
///
/// Short pieces use tiktoken's array scan (fastest for the usual few bytes). Long pieces, which a
/// hostile or unusual input can make arbitrarily long (a megabyte of one letter is one piece), use a
/// heap over a linked list: O(n log n), never quadratic.
struct BytePairEncoder {
    let vocabulary: BPEVocabulary
    let table: UnsafeBufferPointer<UInt32>
    let bytes: UnsafeBufferPointer<UInt8>
    let offsets: UnsafeBufferPointer<UInt32>

    static let longPiece = 128

    @inline(__always)
    func rank(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        vocabulary.rank(p, n, table: table, bytes: bytes, offsets: offsets)
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

    /// tiktoken's scan: `parts[k]` holds a boundary and the rank of the pair starting there.
    func encodeShort(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        withUnsafeTemporaryAllocation(of: (start: Int32, rank: UInt32).self, capacity: n + 1) { parts in
            var count = n + 1
            for i in 0..<(n - 1) { parts[i] = (Int32(i), rank(piece + i, 2)) }
            parts[n - 1] = (Int32(n - 1), UInt32.max)
            parts[n] = (Int32(n), UInt32.max)

            @inline(__always) func pairRank(_ i: Int) -> UInt32 {
                guard i + 3 < count else { return UInt32.max }
                let start = Int(parts[i].start)
                return rank(piece + start, Int(parts[i + 3].start) - start)
            }

            while count > 1 {
                var minRank = UInt32.max
                var minIndex = 0
                for i in 0..<(count - 1) where parts[i].rank < minRank {
                    minRank = parts[i].rank
                    minIndex = i
                }
                if minRank == UInt32.max { break }
                parts[minIndex].rank = pairRank(minIndex)
                if minIndex > 0 { parts[minIndex - 1].rank = pairRank(minIndex - 1) }
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

    /// Heap of (rank, start) over a doubly linked list of symbols; stale heap entries are skipped.
    func encodeLong(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) {
        // Symbol i starts at byte i; next[i]/prev[i] link live symbols; pair[i] is the rank of symbol i
        // joined with its successor (UInt32.max when none).
        var next = [Int32](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Int32(i + 1) }
            c = n
        }
        var prev = [Int32](unsafeUninitializedCapacity: n) { b, c in
            for i in 0..<n { b[i] = Int32(i - 1) }
            c = n
        }
        var pair = [UInt32](repeating: UInt32.max, count: n)
        var heap: [UInt64] = []
        heap.reserveCapacity(n)
        for i in 0..<(n - 1) {
            let r = rank(piece + i, 2)
            pair[i] = r
            if r != UInt32.max { heap.append(UInt64(r) << 32 | UInt64(i)) }
        }
        var minHeap = MinHeap(storage: heap)

        @inline(__always) func joinedRank(_ i: Int) -> UInt32 {
            let j = Int(next[i])
            guard j < n else { return UInt32.max }
            let k = Int(next[j])
            return rank(piece + i, k - i)
        }

        while let top = minHeap.pop() {
            let r = UInt32(top >> 32)
            let i = Int(top & 0xFFFF_FFFF)
            // Stale if i was merged into its predecessor (prev link broken) or its pair changed.
            guard pair[i] == r, next[i] <= n else { continue }
            let j = Int(next[i])
            // Merge j into i.
            let k = Int(next[j])
            next[i] = Int32(k)
            if k < n { prev[k] = Int32(i) }
            next[j] = Int32(n + 1)  // dead
            pair[j] = UInt32.max
            let ri = joinedRank(i)
            pair[i] = ri
            if ri != UInt32.max { minHeap.push(UInt64(ri) << 32 | UInt64(i)) }
            let p = Int(prev[i])
            if p >= 0 {
                let rp = joinedRank(p)
                pair[p] = rp
                if rp != UInt32.max { minHeap.push(UInt64(rp) << 32 | UInt64(p)) }
            }
        }
        var i = 0
        while i < n {
            let j = Int(next[i])
            emit(rank(piece + i, j - i))
            i = j
        }
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
