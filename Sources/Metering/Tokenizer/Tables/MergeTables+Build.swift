/// The steps of ``MergeTables/init(vocabulary:)``, each deriving some of the tables from the vocabulary
/// (or from an earlier step), once per process.
extension MergeTables {
    /// The merge tree as arrays, before they are frozen: ``split``, ``length``, ``nextPrefix`` and the
    /// ``pairs`` table.
    struct MergeTree {
        var split: [UInt64]
        var length: [UInt8]
        var nextPrefix: [UInt32]
        var pairs: [UInt64]
        var pairShift: UInt64
        var unreachableCount: Int
    }

    /// The candidate lengths by three- and six-byte prefixes, and what stands in front of them: the
    /// hashes of the prefixes, for their filters, and the characters that begin longer tokens.
    struct PrefixTables {
        var index3: [UInt16]
        var index6: [UInt16]
        var masks: [UInt64]
        var hashes3: [UInt64]
        var hashes6: [UInt64]
        var bmpBeginsLonger: [UInt64]
    }

    /// Step 1: the merge tree. Splits are settled in rank order (a token's parts rank below it), and
    /// the prefix chain then skips the tokens found unreachable.
    static func mergeTree(_ v: BPEVocabulary) -> MergeTree {
        let n = v.tokenCount
        precondition(n < 1 << 21, "vocabulary too large for packed pair slots")
        var bits: UInt64 = 4
        while (1 << bits) < n * 2 { bits += 1 }
        var tree = MergeTree(
            split: [UInt64](repeating: 0, count: n), length: [UInt8](repeating: 0, count: n),
            nextPrefix: [UInt32](repeating: UInt32.max, count: n),
            pairs: [UInt64](repeating: Self.empty, count: 1 << Int(bits)), pairShift: 64 - bits, unreachableCount: 0)
        let anyPrefix = longestPrefixes(v)
        settleSplits(v, longestPrefixes: anyPrefix, into: &tree)
        for r in 0..<n {
            var p = anyPrefix[r]
            while p != UInt32.max, tree.length[Int(p)] == 0 { p = anyPrefix[Int(p)] }
            tree.nextPrefix[r] = p
        }
        return tree
    }

    /// For each token, its longest proper prefix that is a token, reachable or not (`UInt32.max`:
    /// none).
    static func longestPrefixes(_ v: BPEVocabulary) -> [UInt32] {
        var anyPrefix = [UInt32](repeating: UInt32.max, count: v.tokenCount)
        v.bytes.withUnsafeBufferPointer { allBytes in
            let table = v.table.buffer
            let base = allBytes.baseAddress!
            for r in 0..<v.tokenCount {
                let start = base + Int(v.offsets[r])
                var l = Int(v.offsets[r + 1] - v.offsets[r]) - 1
                while l >= 1 {
                    let p = v.rank(start, l, table: table, bytes: allBytes)
                    if p != UInt32.max {
                        anyPrefix[r] = p
                        break
                    }
                    l -= 1
                }
            }
        }
        return anyPrefix
    }

    /// Each token's split: the first of its prefix tokens, longest first, that is reachable, ranks
    /// below it, and leaves a reachable rest that may follow it. A token with none is unreachable.
    static func settleSplits(_ v: BPEVocabulary, longestPrefixes anyPrefix: [UInt32], into tree: inout MergeTree) {
        v.bytes.withUnsafeBufferPointer { allBytes in
            let table = v.table.buffer
            let base = allBytes.baseAddress!
            func start(_ r: Int) -> UnsafePointer<UInt8> { base + Int(v.offsets[r]) }
            func byteCount(_ r: Int) -> Int { Int(v.offsets[r + 1] - v.offsets[r]) }
            for r in 0..<v.tokenCount {
                let count = byteCount(r)
                tree.split[r] = UInt64(r) << 32 | UInt64(r)
                if count == 1 {
                    tree.length[r] = 1
                    continue
                }
                var left = anyPrefix[r]
                while left != UInt32.max {
                    let l = Int(left)
                    if l < r, tree.length[l] != 0 {
                        let rest = v.rank(
                            start(r) + byteCount(l), count - byteCount(l), table: table, bytes: allBytes)
                        if rest != UInt32.max, Int(rest) < r, tree.length[Int(rest)] != 0,
                            isValidPair(left, rest, split: tree.split, pairs: tree.pairs, shift: tree.pairShift)
                        {
                            tree.split[r] = UInt64(left) << 32 | UInt64(rest)
                            insert(left, rest, merged: UInt32(r), into: &tree.pairs, shift: tree.pairShift)
                            tree.length[r] = UInt8(count)
                            break
                        }
                    }
                    left = anyPrefix[l]
                }
                if tree.length[r] == 0 { tree.unreachableCount += 1 }
            }
        }
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

    /// ``isValidPair(_:_:)`` on the arrays of a tree still being built.
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

    /// The hashes of the pair table's keys, for ``pairFilter``.
    static func pairHashes(_ pairs: [UInt64]) -> [UInt64] {
        pairs.filter { $0 != Self.empty }.map { ($0 >> 21) &* 0x9E37_79B9_7F4A_7C15 }
    }

    /// Step 2: the candidate lengths of the reachable tokens of three bytes or more, by three-byte and
    /// by six-byte prefix slots (their masks deduplicated into one list), and the prefix hashes and
    /// per-character bits that stand in front of them.
    static func prefixTables(_ v: BPEVocabulary, length: [UInt8]) -> PrefixTables {
        let n = v.tokenCount
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
        let index3 = index(slotMasks3)
        let index6 = index(slotMasks6)
        return PrefixTables(
            index3: index3, index6: index6, masks: prefixMasks, hashes3: prefix3Hashes, hashes6: prefix6Hashes,
            bmpBeginsLonger: bmpBeginsLonger)
    }

    /// Step 3: ``cutBits``, by the base64 codes of the bytes.
    static func cutBits(_ v: BPEVocabulary, codes cutCodes: [UInt8]) -> [UInt64] {
        var cutBits = [UInt64](repeating: 0, count: 64 + 4096)
        for r in 0..<v.tokenCount {
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
        return cutBits
    }

    /// Step 4: ``charCutBits``.
    static func charCutBits(_ v: BPEVocabulary) -> [UInt64] {
        var charCutBits = [UInt64](repeating: 0, count: 4096)
        func set(_ bit: Int) { charCutBits[bit >> 6] |= 1 << UInt64(bit & 63) }
        func isLead(_ b: UInt8) -> Bool { b & 0xF0 == 0xE0 }
        func isTrail(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
        for r in 0..<v.tokenCount {
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
        return charCutBits
    }
}
