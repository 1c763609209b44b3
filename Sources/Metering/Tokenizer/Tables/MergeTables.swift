import Foundation

/// What the backtracking encoder needs beyond the rank lookup, derived from a vocabulary once, when it
/// loads.
///
/// In a tiktoken vocabulary, merging two adjacent tokens yields the token ranked by their concatenated
/// bytes, and BPE always merges the lowest-ranked pair first. So every reachable multi-byte token has
/// one *split*: the two tokens BPE holds just before its final merge when it encodes the token's own
/// bytes. The splits are the merge tree; they let us decide whether two tokens can stand side by side
/// in a BPE result without re-encoding their bytes (``isValidPair``).
///
/// A token that BPE cannot produce from its own bytes (none in o200k_base or cl100k_base; checked for
/// every vocabulary) is *unreachable*: it never appears inside a piece's encoding, only as a whole piece
/// (tiktoken's whole-piece lookup), so the encoder skips it.
struct MergeTables: Sendable {
    /// Per rank: left part << 32 | right part. A single byte, or an unreachable token, is its own parts.
    let split: FrozenBuffer<UInt64>
    /// Per rank: the longest reachable token that is a proper prefix of this one, or `UInt32.max`.
    let nextPrefix: FrozenBuffer<UInt32>
    /// Per rank: byte length, or 0 for an unreachable multi-byte token.
    let length: FrozenBuffer<UInt8>
    /// Candidate lengths by the first three bytes: `prefixIndex[prefixSlot(p)]` picks two words of
    /// `prefixMasks`, whose bits `L - 3` are the lengths L ≥ 3 of the reachable tokens whose first
    /// three bytes hash to that slot (a superset when prefixes collide, which only costs a lookup).
    /// Deduplicated, it is about 150 KiB, small enough to stay in cache.
    let prefixIndex: FrozenBuffer<UInt16>
    /// The exact three-byte prefixes of the same tokens (64 KiB). Those slots are a third full, so text
    /// that begins few tokens, such as the middle of rare characters that split into bytes, would find
    /// false candidates in them a third of the time.
    let prefix3Filter: BloomFilter
    /// The same for tokens of 6 bytes or more by their first six bytes (two CJK characters): where
    /// six bytes are available, a length of 6 or more must be in both masks. Most pairs of characters
    /// begin no token, so this rules out most long candidates with one lookup instead of one each.
    let prefix6Index: FrozenBuffer<UInt16>
    /// The exact six-byte prefixes of those tokens (256 KiB, stays in cache). The slots above are
    /// saturated (about 60,000 prefixes in 65,536 slots), so on text whose character pairs begin no
    /// token, such as a run of rare ideographs, most slots would still offer candidates, each costing a
    /// failed lookup; the filter rules out nearly all of them at once.
    let prefix6Filter: BloomFilter
    let prefixMasks: FrozenBuffer<UInt64>
    /// One bit per three-byte UTF-8 character (by its 16 payload bits; 8 KiB): set when a reachable
    /// token longer than three bytes begins with it. Most ideographs begin none, and for them the
    /// longest match is found without the prefix masks: the character itself, or its first two bytes,
    /// or its first byte.
    let bmpBeginsLonger: FrozenBuffer<UInt64>
    /// Every token's split → the token, packed in one word per slot (left << 42 | right << 21 | merged,
    /// ranks below 2^21) so a probe touches one cache line; open addressing, empty = all ones.
    let pairs: FrozenBuffer<UInt64>
    let pairShift: UInt64
    /// The pair keys (256 KiB, stays in cache): most pairs looked up are not in the table, and this
    /// answers them without touching it.
    let pairFilter: BloomFilter
    /// Number of multi-byte tokens BPE cannot produce from their own bytes.
    let unreachableCount: Int
    /// Each byte's code in base64's alphabet (letters 0–51, digits 52–61, `+` 62, `/` 63), or 0xFF:
    /// the bytes whose neighbourhoods ``cutBits`` describes.
    let cutCodes: FrozenBuffer<UInt8>
    /// Bits by the codes above (33 KiB, stays in cache): the first 64 words have bit `a << 6 | b` set
    /// when the two bytes make a token; the next 4,096 have bit `a << 12 | b << 6 | c` set when the
    /// three bytes occur anywhere inside a token. ``BytePairEncoder/encodeAtCuts(_:_:emit:)`` reads
    /// from them where BPE can never merge across a boundary.
    let cutBits: FrozenBuffer<UInt64>
    /// The same for the boundary between two three-byte UTF-8 characters `x0 x1 x2 | y0 y1 y2`
    /// (32 KiB, ``isCharCut(_:)``), in four parts of 1,024 words:
    /// - bit `x1 x2 y0` (six, six and four payload bits) set when those three bytes occur inside a
    ///   token, or `x2 y0` is a token;
    /// - bit `x2 y0 y1` set when those occur inside a token;
    /// - a bit per character (its 16 payload bits, ``charIndex(_:_:_:)``) set when it occurs inside a
    ///   token with a byte after it (``followedBit``),
    /// - and with a byte before it (``precededBit``). A token across the boundary with less than a
    ///   character on either side (`x2 y0`, `x1 x2 y0`, `x2 y0 y1` or `x1 x2 y0 y1`; three in cl100k
    ///   and qwen, six in o200k) marks every character it could end or begin: in cl100k and qwen, two
    ///   tokens `x2 ED` mark all that begin with ED (U+D000–U+DFFF: the last 1,956 Hangul syllables).
    let charCutBits: FrozenBuffer<UInt64>

    static let empty = UInt64.max
    static let pairFilterWords = 1 << 15

    /// The six bytes at `p` as one word.
    @inline(__always)
    static func sixBytes(_ p: UnsafePointer<UInt8>) -> UInt64 {
        let raw = UnsafeRawPointer(p)
        return UInt64(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
            | UInt64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) << 32
    }

    /// The `prefix6Index` slot of six bytes.
    @inline(__always)
    static func prefixSlot6(_ v: UInt64) -> Int {
        Int(truncatingIfNeeded: (v &* 0x9E37_79B9_7F4A_7C15) >> 48)
    }

    /// Whether six bytes may begin a reachable token of six bytes or more (false: they certainly do not).
    @inline(__always)
    func mayBeginLongToken(_ v: UInt64) -> Bool {
        prefix6Filter.mayContain(v &* 0xD6E8_FEB8_6659_FD93)
    }

    /// Whether the three bytes at `p` may begin a reachable token of three bytes or more (false: they
    /// certainly do not).
    @inline(__always)
    func mayBeginToken3(_ p: UnsafePointer<UInt8>) -> Bool {
        prefix3Filter.mayContain(Self.prefix3Hash(p))
    }

    @inline(__always)
    static func prefix3Hash(_ p: UnsafePointer<UInt8>) -> UInt64 {
        UInt64(UInt32(p[0]) << 16 | UInt32(p[1]) << 8 | UInt32(p[2])) &* 0xD6E8_FEB8_6659_FD93
    }

    /// The `prefixIndex` slot of the three bytes at `p`.
    @inline(__always)
    static func prefixSlot(_ p: UnsafePointer<UInt8>) -> Int {
        Int(truncatingIfNeeded: ((UInt32(p[0]) << 16 | UInt32(p[1]) << 8 | UInt32(p[2])) &* 0x9E37_79B1) >> 16)
    }

    init(vocabulary v: BPEVocabulary) {
        let n = v.tokenCount
        var split = [UInt64](repeating: 0, count: n)
        var nextPrefix = [UInt32](repeating: UInt32.max, count: n)
        var length = [UInt8](repeating: 0, count: n)
        var bits: UInt64 = 4
        while (1 << bits) < n * 2 { bits += 1 }
        precondition(n < 1 << 21, "vocabulary too large for packed pair slots")
        var pairs = [UInt64](repeating: Self.empty, count: 1 << Int(bits))
        let pairShift = 64 - bits
        var unreachable = 0
        v.bytes.withUnsafeBufferPointer { allBytes in
            do {
                let table = v.table.buffer
                let base = allBytes.baseAddress!
                func start(_ r: Int) -> UnsafePointer<UInt8> { base + Int(v.offsets[r]) }
                func byteCount(_ r: Int) -> Int { Int(v.offsets[r + 1] - v.offsets[r]) }
                // Longest proper prefix tokens first, over all tokens (reachability comes next).
                var anyPrefix = [UInt32](repeating: UInt32.max, count: n)
                for r in 0..<n {
                    let count = byteCount(r)
                    var l = count - 1
                    while l >= 1 {
                        let p = v.rank(start(r), l, table: table, bytes: allBytes)
                        if p != UInt32.max {
                            anyPrefix[r] = p
                            break
                        }
                        l -= 1
                    }
                }
                // Splits in rank order: a token's parts rank below it, so they are settled first.
                for r in 0..<n {
                    let count = byteCount(r)
                    split[r] = UInt64(r) << 32 | UInt64(r)
                    if count == 1 {
                        length[r] = 1
                        continue
                    }
                    var left = anyPrefix[r]
                    while left != UInt32.max {
                        let l = Int(left)
                        if l < r, length[l] != 0 {
                            let rest = v.rank(
                                start(r) + byteCount(l), count - byteCount(l), table: table, bytes: allBytes)
                            if rest != UInt32.max, Int(rest) < r, length[Int(rest)] != 0,
                                Self.isValidPair(
                                    left, rest, split: split, pairs: pairs, shift: pairShift)
                            {
                                split[r] = UInt64(left) << 32 | UInt64(rest)
                                Self.insert(left, rest, merged: UInt32(r), into: &pairs, shift: pairShift)
                                length[r] = UInt8(count)
                                break
                            }
                        }
                        left = anyPrefix[l]
                    }
                    if length[r] == 0 { unreachable += 1 }
                }
                // The prefix chain over reachable tokens only.
                for r in 0..<n {
                    var p = anyPrefix[r]
                    while p != UInt32.max, length[Int(p)] == 0 { p = anyPrefix[Int(p)] }
                    nextPrefix[r] = p
                }
            }
        }
        // Masks by three-byte and by six-byte prefix slots (deduplicated into one list below), and the
        // filters and the per-character bits that stand in front of them.
        var bmpBeginsLonger = [UInt64](repeating: 0, count: 65536 / 64)
        var slotMasks3 = [UInt64](repeating: 0, count: 2 * 65536)
        var slotMasks6 = [UInt64](repeating: 0, count: 2 * 65536)
        var prefix3Hashes: [UInt64] = []
        var prefix6Hashes: [UInt64] = []
        v.bytes.withUnsafeBufferPointer { b in
            for r in 0..<n where length[r] >= 3 {
                let start = b.baseAddress! + Int(v.offsets[r])
                let bit = Int(length[r]) - 3
                slotMasks3[2 * Self.prefixSlot(start) + bit / 64] |= 1 << UInt64(bit % 64)
                prefix3Hashes.append(Self.prefix3Hash(start))
                if length[r] > 3, let index = BPEVocabulary.bmpIndex(start[0], start[1], start[2]) {
                    bmpBeginsLonger[index >> 6] |= 1 << UInt64(index & 63)
                }
                if length[r] >= 6 {
                    let six = Self.sixBytes(start)
                    slotMasks6[2 * Self.prefixSlot6(six) + bit / 64] |= 1 << UInt64(bit % 64)
                    prefix6Hashes.append(six &* 0xD6E8_FEB8_6659_FD93)
                }
            }
        }
        var prefixMasks: [UInt64] = [0, 0]
        var seen: [[UInt64]: UInt16] = [[0, 0]: 0]
        func index(_ masks: [UInt64]) -> [UInt16] {
            var index = [UInt16](repeating: 0, count: 65536)
            for slot in 0..<65536 {
                let pair = [masks[2 * slot], masks[2 * slot + 1]]
                if let i = seen[pair] {
                    index[slot] = i
                } else {
                    // Vocabularies have a few thousand distinct masks; 65,536 would need a wider index.
                    precondition(prefixMasks.count / 2 < Int(UInt16.max), "too many distinct prefix masks")
                    let i = UInt16(prefixMasks.count / 2)
                    seen[pair] = i
                    prefixMasks.append(contentsOf: pair)
                    index[slot] = i
                }
            }
            return index
        }
        let prefixIndex = index(slotMasks3)
        let prefix6Index = index(slotMasks6)
        self.split = FrozenBuffer(split)
        self.nextPrefix = FrozenBuffer(nextPrefix)
        self.length = FrozenBuffer(length)
        self.prefixIndex = FrozenBuffer(prefixIndex)
        self.prefix6Index = FrozenBuffer(prefix6Index)
        self.bmpBeginsLonger = FrozenBuffer(bmpBeginsLonger)
        self.prefix6Filter = BloomFilter(wordCount: 1 << 15, hashes: prefix6Hashes)
        self.prefix3Filter = BloomFilter(wordCount: 1 << 13, hashes: prefix3Hashes)
        self.prefixMasks = FrozenBuffer(prefixMasks)
        self.pairs = FrozenBuffer(pairs)
        self.pairShift = pairShift
        self.pairFilter = BloomFilter(
            wordCount: Self.pairFilterWords,
            hashes: pairs.filter { $0 != Self.empty }.map { ($0 >> 21) &* 0x9E37_79B9_7F4A_7C15 })
        self.unreachableCount = unreachable
        let cutCodes = BPEVocabulary.base64Values
        var cutBits = [UInt64](repeating: 0, count: 64 + 4096)
        for r in 0..<n {
            let token = v.tokenBytes(r).map { cutCodes[Int($0)] }
            if token.count == 2, token[0] | token[1] < 64 {
                let bit = Int(token[0]) << 6 | Int(token[1])
                cutBits[bit >> 6] |= 1 << UInt64(bit & 63)
            }
            for i in token.indices.dropLast(2) where token[i] | token[i + 1] | token[i + 2] < 64 {
                let bit = Int(token[i]) << 12 | Int(token[i + 1]) << 6 | Int(token[i + 2])
                cutBits[64 + bit >> 6] |= 1 << UInt64(bit & 63)
            }
        }
        self.cutCodes = FrozenBuffer(cutCodes)
        self.cutBits = FrozenBuffer(cutBits)
        var charCutBits = [UInt64](repeating: 0, count: 4096)
        func set(_ bit: Int) { charCutBits[bit >> 6] |= 1 << UInt64(bit & 63) }
        func isLead(_ b: UInt8) -> Bool { b & 0xF0 == 0xE0 }
        func isTrail(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
        for r in 0..<n {
            let token = v.tokenBytes(r)
            let (start, end) = (token.startIndex, token.endIndex)
            if end - start == 2, isTrail(token[start]), isLead(token[start + 1]) {
                for x1 in 0..<64 { set(Self.charCutIndex(x1: UInt8(x1), x2: token[start], y0: token[start + 1])) }
            }
            for i in start..<max(start, end - 2) where isTrail(token[i]) {
                if isTrail(token[i + 1]) && isLead(token[i + 2]) {
                    set(Self.charCutIndex(x1: token[i], x2: token[i + 1], y0: token[i + 2]))
                } else if isLead(token[i + 1]) && isTrail(token[i + 2]) {
                    set(1 << 16 | Self.charCutIndex(x2: token[i], y0: token[i + 1], y1: token[i + 2]))
                }
            }
            // Each character in the token that has a byte after it, or before it.
            for i in start..<max(start, end - 2)
            where isLead(token[i]) && isTrail(token[i + 1]) && isTrail(token[i + 2]) {
                let c = Self.charIndex(token[i], token[i + 1], token[i + 2])
                if i + 3 < end { set(Self.followedBit | c) }
                if i > start { set(Self.precededBit | c) }
            }
            // A token that would lie across the boundary with less than a character on either side
            // (x2 y0, x1 x2 y0, x2 y0 y1 or x1 x2 y0 y1) marks every character it could lie in: those
            // after the boundary that begin with y0 (or y0 y1), or those before it that end with x1 x2.
            let count = end - start
            guard (2...4).contains(count), isTrail(token[start]) else { continue }
            if count == 2 && isLead(token[start + 1]) {
                for c in 0..<(1 << 12) { set(Self.precededBit | Int(token[start + 1] & 0x0F) << 12 | c) }
            } else if count == 3 && isLead(token[start + 1]) && isTrail(token[start + 2]) {
                for c in 0..<64 { set(Self.precededBit | Self.charIndex(token[start + 1], token[start + 2], UInt8(c))) }
            } else if count >= 3 && isTrail(token[start + 1]) && isLead(token[start + 2])
                && (count == 3 || isTrail(token[start + 3]))
            {
                for c in 0..<16 { set(Self.followedBit | Self.charIndex(UInt8(c), token[start], token[start + 1])) }
            }
        }
        self.charCutBits = FrozenBuffer(charCutBits)
    }

    @inline(__always)
    static func charCutIndex(x1: UInt8, x2: UInt8, y0: UInt8) -> Int {
        Int(x1 & 0x3F) << 10 | Int(x2 & 0x3F) << 4 | Int(y0 & 0x0F)
    }

    @inline(__always)
    static func charCutIndex(x2: UInt8, y0: UInt8, y1: UInt8) -> Int {
        Int(x2 & 0x3F) << 10 | Int(y0 & 0x0F) << 6 | Int(y1 & 0x3F)
    }

    /// The bit of a three-byte character (lead, trail, trail) among 65,536: its 16 payload bits.
    @inline(__always)
    static func charIndex(_ c0: UInt8, _ c1: UInt8, _ c2: UInt8) -> Int {
        Int(c0 & 0x0F) << 12 | Int(c1 & 0x3F) << 6 | Int(c2 & 0x3F)
    }

    static let followedBit = 1 << 17
    static let precededBit = 1 << 17 | 1 << 16

    /// Whether BPE can never merge across the boundary at `p`, between the three-byte characters
    /// `p[-3..<0]` and `p[0..<3]` (the caller checks their shapes), by ``charCutBits``. A token that
    /// lay across it would hold `x2 y0` and either `x1 x2 y0` or `x2 y0 y1`, or be `x2 y0`: the rule of
    /// ``cutScan(_:_:)``. It would also hold the whole character before the boundary and a byte after
    /// it, or the whole character after and a byte before, or be one of the few tokens marked in their
    /// place. Either test, when it finds no such token, makes a cut. Between random ideographs of
    /// U+4E00–U+9FFF, the bytes alone find cuts at 98% of the boundaries in cl100k, 79% in o200k and
    /// 49% in qwen, the characters alone at 98%, 89% and 79%, and both at 99.7%, 96% and 85%. In the
    /// Chinese prose of the benchmark, whose characters are common, both find 40%, 14% and 6%.
    @inline(__always)
    func isCharCut(_ p: UnsafePointer<UInt8>) -> Bool {
        let bits = charCutBits.base
        let before = Self.charCutIndex(x1: p[-2], x2: p[-1], y0: p[0])
        let after = 1 << 16 | Self.charCutIndex(x2: p[-1], y0: p[0], y1: p[1])
        let bytes = bits[before >> 6] >> UInt64(before & 63) | bits[after >> 6] >> UInt64(after & 63)
        let left = Self.followedBit | Self.charIndex(p[-3], p[-2], p[-1])
        let right = Self.precededBit | Self.charIndex(p[0], p[1], p[2])
        let chars = bits[left >> 6] >> UInt64(left & 63) | bits[right >> 6] >> UInt64(right & 63)
        return bytes & chars & 1 == 0
    }

    /// A scan for the boundaries of the piece `p[0..<n]` across which BPE can never merge, judged by
    /// the base64 bytes around them (a boundary next to any other byte is never one).
    ///
    /// A merge across the boundary before `p[k]` would make a token holding `p[k - 1]` and `p[k]`:
    /// either those two bytes alone, or a longer token that holds `p[k - 2] p[k - 1] p[k]` or
    /// `p[k - 1] p[k] p[k + 1]` within the piece. When none of these is in the vocabulary, the two
    /// sides merge as if they were separate pieces. Random letters (base64, keys, hashes) have such a
    /// boundary every two or three bytes, since most mixed-case triples occur in no token; words
    /// nearly never do.
    @inline(__always)
    func cutScan(_ p: UnsafePointer<UInt8>, _ n: Int) -> CutScan {
        CutScan(p: p, n: n, codes: cutCodes.base, bits: cutBits.base)
    }

    /// Whether `p[0..<n]` (n ≥ 3) may be a token, judged by ``cutBits``: a token holds no triple of
    /// base64 bytes that occurs inside none. Other bytes always pass.
    @inline(__always)
    func mayBeToken(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let codes = cutCodes.base
        let (a0, a1, a2) = (UInt32(codes[Int(p[0])]), UInt32(codes[Int(p[1])]), UInt32(codes[Int(p[2])]))
        let (b0, b1, b2) = (UInt32(codes[Int(p[n - 3])]), UInt32(codes[Int(p[n - 2])]), UInt32(codes[Int(p[n - 1])]))
        if (a0 | a1 | a2 | b0 | b1 | b2) >= 64 { return true }  // a byte outside base64 (code 0xFF)
        let a = a0 << 12 | a1 << 6 | a2
        let b = b0 << 12 | b1 << 6 | b2
        let bits = cutBits.base + 64
        return bits[Int(a >> 6)] >> UInt64(a & 63) & bits[Int(b >> 6)] >> UInt64(b & 63) & 1 != 0
    }

    struct CutScan {
        let p: UnsafePointer<UInt8>
        let n: Int
        let codes: UnsafePointer<UInt8>
        let bits: UnsafePointer<UInt64>
        /// 1 when the triple centred on the byte before the next boundary occurs in a token (or holds
        /// a byte outside the alphabet).
        var tripleBefore: UInt64 = 0

        /// Bit i set when the boundary before `p[k + i]` is a cut, for i < count (count ≤ 64, and
        /// calls go in order: k = 1, 65, 129, …). Branch-free: at random letters, whether a boundary
        /// is a cut is a coin toss that a branch would mispredict.
        @inline(__always)
        mutating func next(_ k: Int, _ count: Int) -> UInt64 {
            var mask: UInt64 = 0
            var a = UInt32(codes[Int(p[k - 1])])
            var b = UInt32(codes[Int(p[k])])
            for i in 0..<count {
                let j = k + i
                // The last boundary has no triple after it: a zero code there, with its bit ignored.
                let c = j + 1 < n ? UInt32(codes[Int(p[j + 1])]) : 0
                let tripleAfter =
                    (j + 1 < n ? bit(4096 + ((a & 63) << 12 | (b & 63) << 6 | (c & 63))) : 0)
                    | UInt64((a | b | c) >> 6 != 0 ? 1 : 0)
                let blocked = bit((a & 63) << 6 | (b & 63)) | tripleBefore | tripleAfter
                mask |= (blocked ^ 1) << UInt64(i)
                tripleBefore = tripleAfter
                a = b
                b = c
            }
            return mask
        }

        @inline(__always)
        func bit(_ index: UInt32) -> UInt64 { bits[Int(index >> 6)] >> UInt64(index & 63) & 1 }
    }

    private static func insert(
        _ left: UInt32, _ right: UInt32, merged: UInt32, into pairs: inout [UInt64], shift: UInt64
    ) {
        let key = UInt64(left) << 21 | UInt64(right)
        let mask = pairs.count - 1
        var slot = Int((key &* 0x9E37_79B9_7F4A_7C15) >> shift)
        while pairs[slot] != empty { slot = (slot + 1) & mask }
        pairs[slot] = key << 21 | UInt64(merged)
    }

    /// The rank that `left` and `right` merge into, or `UInt32.max`.
    @inline(__always)
    static func merged(
        _ left: UInt32, _ right: UInt32, pairs: UnsafePointer<UInt64>, mask: Int, shift: UInt64,
        filter: UnsafePointer<UInt64>?
    ) -> UInt32 {
        let key = UInt64(left) << 21 | UInt64(right)
        let h = key &* 0x9E37_79B9_7F4A_7C15
        if let filter, !BloomFilter.mayContain(h, words: filter, mask: pairFilterWords - 1) { return UInt32.max }
        var slot = Int(h >> shift)
        while true {
            let v = pairs[slot]
            if v >> 21 == key { return UInt32(truncatingIfNeeded: v & 0x1F_FFFF) }
            if v == empty { return UInt32.max }
            slot = (slot + 1) & mask
        }
    }

    /// Whether BPE, given the bytes of `left` followed by those of `right`, yields exactly these two
    /// tokens.
    ///
    /// BPE could only do otherwise by a merge across the boundary between them. Walk back through the
    /// merges that built the two tokens, latest first: the right edge of `left` and the left edge of
    /// `right` at each moment are parts on their merge trees' inner spines. If any two such edge parts
    /// merge into a token ranked below the merge that next consumes one of them, BPE would have taken
    /// that merge across the boundary instead. (`limit` is the rank of that next merge; on ties the
    /// left pair wins, so a merge on the right spine is compared with its rank plus one.)
    @inline(__always)
    func isValidPair(_ left: UInt32, _ right: UInt32) -> Bool {
        Self.isValidPair(
            left, right, split: split.base, pairs: pairs.base, mask: pairs.count - 1, shift: pairShift,
            filter: pairFilter.words.base)
    }

    @inline(__always)
    static func isValidPair(
        _ left: UInt32, _ right: UInt32, split: UnsafePointer<UInt64>, pairs: UnsafePointer<UInt64>, mask: Int,
        shift: UInt64, filter: UnsafePointer<UInt64>?
    ) -> Bool {
        var a = left
        var b = right
        var limit = UInt32.max
        while true {
            let m = merged(a, b, pairs: pairs, mask: mask, shift: shift, filter: filter)
            if m != UInt32.max, m < limit { return false }
            if a > b {
                limit = a
                a = UInt32(truncatingIfNeeded: split[Int(a)])
                if a == limit {
                    limit = b + 1
                    b = UInt32(truncatingIfNeeded: split[Int(b)] >> 32)
                    if b + 1 == limit { return true }
                }
            } else {
                limit = b + 1
                b = UInt32(truncatingIfNeeded: split[Int(b)] >> 32)
                if b + 1 == limit {
                    limit = a
                    a = UInt32(truncatingIfNeeded: split[Int(a)])
                    if a == limit { return true }
                }
            }
        }
    }

    /// The array-based form used while the tables are being built.
    private static func isValidPair(
        _ left: UInt32, _ right: UInt32, split: [UInt64], pairs: [UInt64], shift: UInt64
    ) -> Bool {
        split.withUnsafeBufferPointer { s in
            pairs.withUnsafeBufferPointer { p in
                isValidPair(
                    left, right, split: s.baseAddress!, pairs: p.baseAddress!, mask: p.count - 1, shift: shift,
                    filter: nil)
            }
        }
    }
}

/// An immutable buffer allocated once and read through a raw pointer, with no bounds checks or
/// reference counting on the hot path. Immutable after `init`, hence safe to share.
///
/// Buffers of a megabyte or more are asked to live on 2 MiB pages (`MADV_HUGEPAGE`): tokenizer
/// lookups land at random in tables of several megabytes, and on 4 KiB pages nearly every one of
/// them would also miss the TLB.
final class FrozenBuffer<Element>: @unchecked Sendable {
    let base: UnsafePointer<Element>
    let count: Int

    var buffer: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }

    init(_ elements: [Element]) {
        let size = max(MemoryLayout<Element>.stride * elements.count, 1)
        let huge = 2 << 20
        var raw: UnsafeMutableRawPointer?
        if size >= 1 << 20 {
            let rounded = (size + huge - 1) / huge * huge
            if posix_memalign(&raw, huge, rounded) == 0, let raw {
                _ = madvise(raw, rounded, Int32(MADV_HUGEPAGE))
            } else {
                raw = nil
            }
        }
        if raw == nil { raw = malloc(size) }
        let p = raw!.bindMemory(to: Element.self, capacity: elements.count)
        _ = UnsafeMutableBufferPointer(start: p, count: elements.count).initialize(from: elements)
        base = UnsafePointer(p)
        count = elements.count
    }

    deinit {
        UnsafeMutablePointer(mutating: base).deinitialize(count: count)
        free(UnsafeMutableRawPointer(mutating: base))
    }
}
