/// A blocked Bloom filter over 64-bit key hashes, for the tokenizer's lookups that mostly fail.
///
/// Each key sets two bits in one 64-bit word, so a query reads a single word. `mayContain` false means
/// the key is certainly absent; true means "look it up", and a false positive costs only that lookup.
/// Callers hash their own keys. The filter folds the high bits down before it picks the word and
/// bits, so a multiplicative hash (strong only in its high bits) is good enough.
struct BloomFilter: Sendable {
    let words: FrozenBuffer<UInt64>
    /// `words.count - 1`.
    let mask: Int

    /// `wordCount` is a power of two of at most 2^15: bits 20–34 of the folded hash pick the word, and
    /// bits 35–46 the two bits in it.
    init(wordCount: Int, hashes: [UInt64]) {
        precondition(wordCount > 0 && wordCount & (wordCount - 1) == 0 && wordCount <= 1 << 15)
        var words = [UInt64](repeating: 0, count: wordCount)
        for h in hashes {
            let (word, bits) = Self.position(h, mask: wordCount - 1)
            words[word] |= bits
        }
        self.words = FrozenBuffer(words)
        self.mask = wordCount - 1
    }

    @inline(__always)
    static func position(_ h: UInt64, mask: Int) -> (word: Int, bits: UInt64) {
        let m = h ^ (h >> 29)
        return (Int(truncatingIfNeeded: m >> 20) & mask, 1 << ((m >> 35) & 63) | 1 << ((m >> 41) & 63))
    }

    @inline(__always)
    func mayContain(_ h: UInt64) -> Bool {
        Self.mayContain(h, words: words.base, mask: mask)
    }

    @inline(__always)
    static func mayContain(_ h: UInt64, words: UnsafePointer<UInt64>, mask: Int) -> Bool {
        let (word, bits) = position(h, mask: mask)
        return words[word] & bits == bits
    }
}
