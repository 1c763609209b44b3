import Testing

@testable import Metering

@Suite("Bloom filter")
struct BloomFilterTests {
    /// Keys hashed the way the tokenizer hashes them: consecutive integers times an odd constant, strong
    /// only in the high bits.
    static func hash(_ key: UInt64) -> UInt64 { key &* 0x9E37_79B9_7F4A_7C15 }

    @Test("every key put in is reported present, and few others are, at the tokenizer's load")
    func noFalseNegativesFewFalsePositives() {
        let keys = 200_000
        let filter = BloomFilter(wordCount: 1 << 15, hashes: (0..<UInt64(keys)).map(Self.hash))
        let missing = (0..<UInt64(keys)).filter { !filter.mayContain(Self.hash($0)) }
        #expect(missing.isEmpty)
        let others = (UInt64(keys)..<UInt64(2 * keys)).filter { filter.mayContain(Self.hash($0)) }.count
        // Two bits in one word of 64, about 12 bits set per word: around 3.5% expected.
        #expect(Double(others) / Double(keys) < 0.06, "false positives: \(others) of \(keys)")
    }

    @Test("keys that differ only in their high bits spread over the words", arguments: [0, 1, 2, 3])
    func highBitsCount(shift: Int) {
        // Keys in the top 16 bits: the product's low 48 bits are all zero, so only the fold of the high
        // bits can tell them apart (a tiktoken key's last bytes are its high bits).
        let hashes = (0..<UInt64(4096)).map { Self.hash($0 << (48 + UInt64(shift))) }
        let filter = BloomFilter(wordCount: 1 << 13, hashes: hashes)
        let words = Set(hashes.map { BloomFilter.position($0, mask: filter.mask).word })
        #expect(words.count > 2000, "\(words.count) distinct words for 4096 keys")
    }
}
