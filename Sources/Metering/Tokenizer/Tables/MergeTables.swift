import Foundation

/// What the encoder needs beyond the rank lookup, derived from a vocabulary once, when it loads: the
/// merge tree, the prefix tables of the longest-match search, and the bit tables of the cut searches
/// (`CutTables.swift`).
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

    /// Derives the tables from the vocabulary (`MergeTables+Build.swift`, one step each): the merge
    /// tree, the prefix tables of the longest-match search, and the bit tables of the cut searches.
    /// The steps compute arrays; only this freezes them.
    init(vocabulary v: BPEVocabulary) {
        let tree = Self.mergeTree(v)
        let prefixes = Self.prefixTables(v, length: tree.length)
        self.split = FrozenBuffer(tree.split)
        self.nextPrefix = FrozenBuffer(tree.nextPrefix)
        self.length = FrozenBuffer(tree.length)
        self.prefixIndex = FrozenBuffer(prefixes.index3)
        self.prefix6Index = FrozenBuffer(prefixes.index6)
        self.bmpBeginsLonger = FrozenBuffer(prefixes.bmpBeginsLonger)
        self.prefix6Filter = BloomFilter(wordCount: 1 << 15, hashes: prefixes.hashes6)
        self.prefix3Filter = BloomFilter(wordCount: 1 << 13, hashes: prefixes.hashes3)
        self.prefixMasks = FrozenBuffer(prefixes.masks)
        self.pairs = FrozenBuffer(tree.pairs)
        self.pairShift = tree.pairShift
        self.pairFilter = BloomFilter(wordCount: Self.pairFilterWords, hashes: Self.pairHashes(tree.pairs))
        self.unreachableCount = tree.unreachableCount
        self.cutCodes = FrozenBuffer(BPEVocabulary.base64Values)
        self.cutBits = FrozenBuffer(Self.cutBits(v, codes: BPEVocabulary.base64Values))
        self.charCutBits = FrozenBuffer(Self.charCutBits(v))
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
}
