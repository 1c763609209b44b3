import Crypto
import Foundation

/// A Hugging Face byte-level BPE (DeepSeek V3's `tokenizer.json`), from the compact file that
/// `Tests/tokenizer/make_deepseek_vocab.py` derives from it (the format is described there).
///
/// Unlike tiktoken, Hugging Face's BPE merges only the pairs its merge list names, lowest rank first:
/// two adjacent tokens whose bytes happen to make a third are not joined unless that pair is listed.
/// So merging looks pairs up by their two token ids (``pairRank(_:_:)``), never by bytes.
final class ByteLevelVocabulary: Sendable {
    /// The token of each byte.
    let byteTokens: FrozenBuffer<UInt32>
    /// Per merge rank: the left and right token it joins. Merge `r` makes token `firstMerge + r`.
    let lefts: FrozenBuffer<UInt32>
    let rights: FrozenBuffer<UInt32>
    let firstMerge: UInt32
    /// Open addressing over `left << 17 | right` → rank, one word per slot (`key << 17 | rank`,
    /// empty = all ones): a probe touches one cache line.
    let pairSlots: FrozenBuffer<UInt64>
    let pairShift: UInt64
    /// Token ids of the byte strings: the tokens from `tokenBase` up (bytes and merges) have rank
    /// `id - tokenBase` in `tokens`, which finds a whole piece's token by its bytes.
    let tokens: BPEVocabulary
    let tokenBase: UInt32
    /// Text matched before pre-tokenization, as Hugging Face's `AddedVocabulary` does.
    let added: AddedTokenMatcher

    static let idBits: UInt64 = 17
    static let emptySlot = UInt64.max

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    /// Parses the compact file. Every merge must join tokens made before it, which makes the ranks
    /// the merger takes non-decreasing (``PairMerger``).
    init(compactFile data: [UInt8]) throws {
        var reader = Reader(data: data)
        guard try reader.bytes(8) == Array("DSBPEv1\n".utf8) else { throw LoadError(description: "not a DSBPEv1 file") }
        _ = try reader.bytes(32)  // the SHA-256 of the source tokenizer.json, for the tests
        let vocabularySize = try reader.u32()
        let mergeCount = Int(try reader.u32())
        let first = try reader.u32()
        let addedCount = Int(try reader.u32())
        guard vocabularySize < 1 << Self.idBits, first >= 256, Int(first) + mergeCount <= vocabularySize else {
            throw LoadError(description: "vocabulary sizes out of range")
        }
        var byteTokens: [UInt32] = []
        for _ in 0..<256 { byteTokens.append(try reader.u32()) }
        var lefts: [UInt32] = []
        var rights: [UInt32] = []
        lefts.reserveCapacity(mergeCount)
        rights.reserveCapacity(mergeCount)
        for r in 0..<mergeCount {
            let (left, right) = (try reader.u32(), try reader.u32())
            guard left < first + UInt32(r), right < first + UInt32(r) else {
                throw LoadError(description: "merge \(r) joins a token made after it")
            }
            lefts.append(left)
            rights.append(right)
        }
        var added: [(id: UInt32, content: [UInt8], normalized: Bool)] = []
        for _ in 0..<addedCount {
            let id = try reader.u32()
            let flags = try reader.bytes(1)[0]
            let length = Int(try reader.u16())
            added.append((id, try reader.bytes(length), flags & 2 != 0))
        }
        // Byte strings in id order: the bytes' tokens must be the ids just below the first merge.
        let base = first - 256
        guard Set(byteTokens) == Set(base..<first) else {
            throw LoadError(description: "byte tokens are not the 256 ids below the first merge")
        }
        var starts = [UInt32](repeating: 0, count: Int(first) + mergeCount)
        var lengths = [UInt32](repeating: 0, count: Int(first) + mergeCount)
        var bytes: [UInt8] = []
        var offsets: [UInt32] = [0]
        for id in base..<first {
            let byte = byteTokens.firstIndex(of: id)!
            starts[Int(id)] = UInt32(bytes.count)
            lengths[Int(id)] = 1
            bytes.append(UInt8(byte))
            offsets.append(UInt32(bytes.count))
        }
        for r in 0..<mergeCount {
            let (l, rt) = (Int(lefts[r]), Int(rights[r]))
            guard l >= Int(base), rt >= Int(base) else {
                throw LoadError(description: "merge \(r) joins an added token")
            }
            let start = UInt32(bytes.count)
            // Copied out first: appending a slice of the array itself would copy the whole array.
            let joined =
                Array(bytes[Int(starts[l])..<Int(starts[l] + lengths[l])])
                + Array(bytes[Int(starts[rt])..<Int(starts[rt] + lengths[rt])])
            bytes.append(contentsOf: joined)
            starts[Int(first) + r] = start
            lengths[Int(first) + r] = UInt32(bytes.count) - start
            offsets.append(UInt32(bytes.count))
        }
        var bits: UInt64 = 1
        while (1 << bits) < mergeCount * 2 { bits += 1 }
        var slots = [UInt64](repeating: Self.emptySlot, count: 1 << Int(bits))
        let mask = slots.count - 1
        for r in 0..<mergeCount {
            let key = UInt64(lefts[r]) << Self.idBits | UInt64(rights[r])
            var slot = Int(Self.hash(key) >> (64 - bits))
            while slots[slot] != Self.emptySlot { slot = (slot + 1) & mask }
            slots[slot] = key << Self.idBits | UInt64(r)
        }
        self.byteTokens = FrozenBuffer(byteTokens)
        self.lefts = FrozenBuffer(lefts)
        self.rights = FrozenBuffer(rights)
        self.firstMerge = first
        self.pairSlots = FrozenBuffer(slots)
        self.pairShift = 64 - bits
        self.tokens = try BPEVocabulary(bytes: bytes, offsets: offsets)
        self.tokenBase = base
        self.added = AddedTokenMatcher(added)
    }

    @inline(__always)
    static func hash(_ key: UInt64) -> UInt64 { (key ^ key >> 29) &* 0x9E37_79B9_7F4A_7C15 }

    /// The rank of the merge that joins `left` and `right`, or `UInt32.max` when none does.
    @inline(__always)
    func pairRank(_ left: UInt32, _ right: UInt32) -> UInt32 {
        let key = UInt64(left) << Self.idBits | UInt64(right)
        let slots = pairSlots.base
        let mask = pairSlots.count - 1
        var slot = Int(Self.hash(key) >> pairShift)
        while true {
            let entry = slots[slot]
            if entry == Self.emptySlot { return UInt32.max }
            if entry >> Self.idBits == key { return UInt32(truncatingIfNeeded: entry & (1 << Self.idBits - 1)) }
            slot = (slot + 1) & mask
        }
    }

    /// The bytes of token `id` (an added token's text for those), or nil for an unknown id.
    func bytes(of id: Int) -> [UInt8]? {
        if let content = added.content(of: id) { return content }
        guard id >= Int(tokenBase), id - Int(tokenBase) < tokens.tokenCount else { return nil }
        return Array(tokens.tokenBytes(id - Int(tokenBase)))
    }

    /// Loads `name.bpe` from the package resources, checked against the shipped SHA256SUMS.
    static func loadResource(named name: String) throws -> ByteLevelVocabulary {
        switch VocabularyResource.verifiedBytes(name: name, extension: "bpe") {
        case .success(let bytes): return try ByteLevelVocabulary(compactFile: bytes)
        case .failure(let error): throw LoadError(description: error.description)
        }
    }

    /// Little-endian fields, each checked against the end of the data.
    struct Reader {
        let data: [UInt8]
        var at = 0

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, n <= data.count - at else { throw LoadError(description: "truncated vocabulary file") }
            defer { at += n }
            return Array(data[at..<(at + n)])
        }

        mutating func u32() throws -> UInt32 {
            guard data.count - at >= 4 else { throw LoadError(description: "truncated vocabulary file") }
            defer { at += 4 }
            return UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3])
                << 24
        }

        mutating func u16() throws -> UInt16 {
            guard data.count - at >= 2 else { throw LoadError(description: "truncated vocabulary file") }
            defer { at += 2 }
            return UInt16(data[at]) | UInt16(data[at + 1]) << 8
        }
    }
}
