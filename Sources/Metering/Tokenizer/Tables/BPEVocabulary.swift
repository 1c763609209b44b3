import Crypto
import Foundation

/// A tiktoken-format vocabulary: token bytes ↔ rank, with a flat open-addressing table so a lookup
/// hashes the bytes in place (no allocation per lookup, no `[UInt8]` keys).
final class BPEVocabulary: Sendable {
    /// All token bytes back to back, in rank order.
    let bytes: [UInt8]
    /// `offsets[r] ..< offsets[r + 1]` are the bytes of rank `r`.
    let offsets: [UInt32]
    /// Open-addressing slots. Capacity is a power of two, at least twice the token count, so most
    /// lookups hit their first slot; tokens of up to 8 bytes are compared inside the slot itself.
    let table: FrozenBuffer<Slot>
    /// log2(capacity): slots are chosen by the top bits of a multiplicative hash.
    let shift: UInt64
    /// Every token's hash (256 KiB, stays in cache; about 3.5% false positives for o200k): answers most
    /// failed lookups (most pair lookups during merging fail) without touching the large slot table.
    let filter: BloomFilter
    /// Rank of each single byte.
    let byteRanks: FrozenBuffer<UInt32>
    /// Rank of each two-byte sequence (UInt32.max when none): 256 KiB that stay in cache, for the
    /// most frequent lookups of all (every adjacent byte pair starts as one).
    let pairRanks: FrozenBuffer<UInt32>
    /// Rank of each three-byte UTF-8 sequence (a BMP character from U+0800, which covers CJK), indexed
    /// by its 16 payload bits: another 256 KiB that turns most CJK lookups into one cached read.
    let bmpRanks: FrozenBuffer<UInt32>
    /// The three-byte ASCII tokens, exactly: for each first two bytes (`b0 << 7 | b1`), two words with
    /// a bit per third byte (`ascii3Bits`), and where that half's ranks begin in `ascii3Ranks`
    /// (`ascii3Starts`), in byte order. A lookup is two or three reads from tables whose used part is
    /// small (the rows of the letters and digits), where the general path reads a Bloom filter word
    /// chosen at random from 256 KiB and, for the many three-letter tokens, a slot of the
    /// multi-megabyte table. Random letters and digits (base64, keys) and English words' merges look
    /// up three ASCII bytes more than any other length.
    let ascii3Bits: FrozenBuffer<UInt64>
    let ascii3Starts: FrozenBuffer<UInt16>
    let ascii3Ranks: FrozenBuffer<UInt32>

    var tokenCount: Int { offsets.count - 1 }

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses `base64(token) rank` lines. Ranks must be 0..<n, each once.
    convenience init(tiktokenFile data: [UInt8]) throws {
        var entries: [(start: Int, length: Int, rank: Int)] = []
        entries.reserveCapacity(data.count / 12)
        var decoded: [UInt8] = []
        decoded.reserveCapacity(data.count)
        var i = 0
        while i < data.count {
            var lineEnd = i
            while lineEnd < data.count && data[lineEnd] != 0x0A { lineEnd += 1 }
            if lineEnd > i {
                var space = i
                while space < lineEnd && data[space] != 0x20 { space += 1 }
                guard space < lineEnd, let rank = Int(String(decoding: data[(space + 1)..<lineEnd], as: UTF8.self))
                else {
                    throw LoadError(description: "malformed vocabulary line at byte \(i)")
                }
                let start = decoded.count
                guard Self.decodeBase64(data[i..<space], into: &decoded) else {
                    throw LoadError(description: "invalid base64 at byte \(i)")
                }
                entries.append((start, decoded.count - start, rank))
            }
            i = lineEnd + 1
        }
        let n = entries.count
        var order = [Int](repeating: -1, count: n)
        for (index, e) in entries.enumerated() {
            guard e.rank >= 0, e.rank < n, order[e.rank] == -1 else {
                throw LoadError(description: "ranks are not a permutation of 0..<\(n)")
            }
            order[e.rank] = index
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(decoded.count)
        var offsets: [UInt32] = [0]
        offsets.reserveCapacity(n + 1)
        for rank in 0..<n {
            let e = entries[order[rank]]
            bytes.append(contentsOf: decoded[e.start..<(e.start + e.length)])
            offsets.append(UInt32(bytes.count))
        }
        try self.init(bytes: bytes, offsets: offsets)
    }

    /// Tokens given in rank order: `bytes[offsets[r] ..< offsets[r + 1]]` is the token of rank `r`.
    init(bytes: [UInt8], offsets: [UInt32]) throws {
        let n = offsets.count - 1
        var bits: UInt64 = 1
        while (1 << bits) < n * 2 { bits += 1 }
        let capacity = 1 << Int(bits)
        var table = [Slot](repeating: Slot(key: 0, length: 0, rank: 0, tail: 0), count: capacity)
        let shift = 64 - bits
        bytes.withUnsafeBufferPointer { b in
            for rank in 0..<n {
                let start = Int(offsets[rank])
                let length = Int(offsets[rank + 1]) - start
                let key = Self.prefixKey(b.baseAddress! + start, length)
                var slot = Int(Self.hash(key: key, b.baseAddress! + start, length) >> shift)
                while table[slot].length != 0 { slot = (slot + 1) & (capacity - 1) }
                table[slot] = Slot(
                    key: key, length: length, rank: UInt32(rank), tail: Self.tailKey(b.baseAddress! + start, length))
            }
        }
        let hashes = bytes.withUnsafeBufferPointer { b in
            (0..<n).map { rank in
                let start = b.baseAddress! + Int(offsets[rank])
                let length = Int(offsets[rank + 1] - offsets[rank])
                return Self.hash(key: Self.prefixKey(start, length), start, length)
            }
        }
        self.filter = BloomFilter(wordCount: 1 << 15, hashes: hashes)
        self.bytes = bytes
        self.offsets = offsets
        self.table = FrozenBuffer(table)
        self.shift = shift
        var byteRanks = [UInt32](repeating: UInt32.max, count: 256)
        for rank in 0..<n where offsets[rank + 1] - offsets[rank] == 1 {
            byteRanks[Int(bytes[Int(offsets[rank])])] = UInt32(rank)
        }
        guard !byteRanks.contains(UInt32.max) else { throw LoadError(description: "some single bytes have no rank") }
        self.byteRanks = FrozenBuffer(byteRanks)
        var pairRanks = [UInt32](repeating: UInt32.max, count: 65536)
        for rank in 0..<n where offsets[rank + 1] - offsets[rank] == 2 {
            let start = Int(offsets[rank])
            pairRanks[Int(bytes[start]) << 8 | Int(bytes[start + 1])] = UInt32(rank)
        }
        self.pairRanks = FrozenBuffer(pairRanks)
        var bmpRanks = [UInt32](repeating: UInt32.max, count: 65536)
        for rank in 0..<n where offsets[rank + 1] - offsets[rank] == 3 {
            let start = Int(offsets[rank])
            if let index = Self.bmpIndex(bytes[start], bytes[start + 1], bytes[start + 2]) {
                bmpRanks[index] = UInt32(rank)
            }
        }
        self.bmpRanks = FrozenBuffer(bmpRanks)
        var ascii3: [(index: Int, rank: UInt32)] = []
        for rank in 0..<n where offsets[rank + 1] - offsets[rank] == 3 {
            let start = Int(offsets[rank])
            let (b0, b1, b2) = (bytes[start], bytes[start + 1], bytes[start + 2])
            if b0 | b1 | b2 < 0x80 { ascii3.append((Int(b0) << 14 | Int(b1) << 7 | Int(b2), UInt32(rank))) }
        }
        ascii3.sort { $0.index < $1.index }
        guard ascii3.count <= Int(UInt16.max) else { throw LoadError(description: "too many three-byte ASCII tokens") }
        var ascii3Bits = [UInt64](repeating: 0, count: 1 << 15)
        var ascii3Starts = [UInt16](repeating: 0, count: 1 << 15)
        var next = 0
        for half in 0..<(1 << 15) {
            ascii3Starts[half] = UInt16(next)
            while next < ascii3.count && ascii3[next].index >> 6 == half {
                ascii3Bits[half] |= 1 << UInt64(ascii3[next].index & 63)
                next += 1
            }
        }
        self.ascii3Bits = FrozenBuffer(ascii3Bits)
        self.ascii3Starts = FrozenBuffer(ascii3Starts)
        self.ascii3Ranks = FrozenBuffer(ascii3.map(\.rank))
    }

    /// Loads a vocabulary shipped in the package and checks it against the shipped SHA256SUMS.
    static func loadResource(named name: String) throws -> BPEVocabulary {
        switch VocabularyResource.verifiedBytes(name: name, extension: "tiktoken") {
        case .success(let bytes): return try BPEVocabulary(tiktokenFile: bytes)
        case .failure(let error): throw LoadError(description: error.description)
        }
    }

    // MARK: Lookup

    /// 16 bytes: the first 8 bytes of the token, its rank and length, and bytes 8..<12, so tokens of
    /// up to 12 bytes are confirmed without reading the token bytes elsewhere in memory.
    struct Slot: Sendable {
        /// The first (up to) 8 bytes, little-endian, zero-padded.
        var key: UInt64
        /// rank | length << 24; 0 marks an empty slot (a token has a length).
        var info: UInt32
        /// Bytes 8..<12, little-endian, zero-padded (0 for tokens of up to 8 bytes).
        var tail: UInt32

        init(key: UInt64, length: Int, rank: UInt32, tail: UInt32) {
            self.key = key
            self.info = length == 0 ? 0 : rank | UInt32(length) << 24
            self.tail = tail
        }

        var rank: UInt32 { info & 0xFF_FFFF }
        var length: Int { Int(info >> 24) }
    }

    /// Bytes 8..<12 of `p[0..<n]` as a slot's `tail`.
    @inline(__always)
    static func tailKey(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        n <= 8 ? 0 : UInt32(truncatingIfNeeded: prefixKey(p + 8, min(n - 8, 4)))
    }

    /// The payload of a well-formed three-byte UTF-8 sequence, or nil.
    @inline(__always)
    static func bmpIndex(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8) -> Int? {
        guard b0 & 0xF0 == 0xE0, b1 & 0xC0 == 0x80, b2 & 0xC0 == 0x80 else { return nil }
        return Int(b0 & 0x0F) << 12 | Int(b1 & 0x3F) << 6 | Int(b2 & 0x3F)
    }

    @inline(__always)
    static func prefixKey(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        // Whole loads, never past `p[n - 1]`: two overlapping 4-byte loads cover 4 to 7 bytes (the
        // overlap holds the same bytes at the same bits, so OR-ing is exact).
        let raw = UnsafeRawPointer(p)
        if n >= 8 { return UInt64(littleEndian: raw.loadUnaligned(as: UInt64.self)) }
        if n >= 4 {
            let low = UInt64(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
            let high = UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)))
            return low | high << UInt64(8 * (n - 4))
        }
        if n >= 2 {
            // A two-byte load and the last byte (the same byte twice when n is 2).
            let low = UInt64(UInt16(littleEndian: raw.loadUnaligned(as: UInt16.self)))
            return low | UInt64(p[n - 1]) << UInt64(8 * (n - 1))
        }
        return n == 1 ? UInt64(p[0]) : 0
    }

    /// Multiplicative hash; callers take the top bits. Bytes past the first 8 are mixed in 8 at a time.
    @inline(__always)
    static func hash(key: UInt64, _ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
        var h = (key ^ UInt64(truncatingIfNeeded: n) << 59) &* 0x9E37_79B9_7F4A_7C15
        if n > 8 {
            let raw = UnsafeRawPointer(p)
            var i = 8
            while i + 8 <= n {
                h = (h ^ (h >> 29) ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                i += 8
            }
            if i < n {
                h = (h ^ (h >> 29) ^ prefixKey(p + i, n - i)) &* 0x94D0_49BB_1331_11EB
            }
        }
        return h
    }

    /// The rank of the bytes `p[0..<n]`, or `UInt32.max` when they are not a token.
    @inline(__always)
    func rank(_ p: UnsafePointer<UInt8>, _ n: Int, table: UnsafeBufferPointer<Slot>, bytes: UnsafeBufferPointer<UInt8>)
        -> UInt32
    {
        if n == 2 { return pairRanks.base[Int(p[0]) << 8 | Int(p[1])] }
        if n == 3 {
            let (b0, b1, b2) = (p[0], p[1], p[2])
            if b0 | b1 | b2 < 0x80 {
                let index = Int(b0) << 14 | Int(b1) << 7 | Int(b2)
                let half = index >> 6
                let below = UInt64(1) << UInt64(index & 63) &- 1
                let word = ascii3Bits.base[half]
                guard (word >> UInt64(index & 63)) & 1 != 0 else { return UInt32.max }
                return ascii3Ranks.base[Int(ascii3Starts.base[half]) + (word & below).nonzeroBitCount]
            }
            if let index = Self.bmpIndex(b0, b1, b2) { return bmpRanks.base[index] }
        }
        let key = Self.prefixKey(p, n)
        let h = Self.hash(key: key, p, n)
        if !filter.mayContain(h) { return UInt32.max }
        var slot = Int(h >> shift)
        let mask = table.count - 1
        while true {
            let entry = table[slot]
            if entry.info == 0 { return UInt32.max }
            if entry.key == key && entry.length == n {
                if n <= 8 { return entry.rank }
                if entry.tail != Self.tailKey(p, n) {
                    slot = (slot + 1) & mask
                    continue
                }
                if n <= 12 { return entry.rank }
                // Bytes 12..<n, a word at a time (long tokens are long runs of one mark, such as 96
                // slashes, that a hostile input makes the encoder look up at every position).
                let start = bytes.baseAddress! + Int(offsets[Int(entry.rank)])
                if memcmp(start + 12, p + 12, n - 12) == 0 { return entry.rank }
            }
            slot = (slot + 1) & mask
        }
    }

    /// The bytes of a rank.
    func tokenBytes(_ rank: Int) -> ArraySlice<UInt8> {
        bytes[Int(offsets[rank])..<Int(offsets[rank + 1])]
    }

    // MARK: Base64

    static let base64Values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
            t[Int(c)] = UInt8(i)
        }
        return t
    }()

    static func decodeBase64(_ s: ArraySlice<UInt8>, into out: inout [UInt8]) -> Bool {
        var acc: UInt32 = 0
        var bits = 0
        for c in s {
            if c == UInt8(ascii: "=") { break }
            let v = base64Values[Int(c)]
            if v == 0xFF { return false }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return true
    }
}
