/// The lookups of the cut searches (`BPE/Cuts.swift`, `BPE/CharacterCuts.swift`) and of the screen of
/// encoded data: bit tables small enough to stay in cache, over the bytes around a boundary.
extension MergeTables {
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
    /// place. Either test, when it finds no such token, makes a cut: each finds cuts the other misses
    /// between rare ideographs, and both find few in prose, whose common characters make words.
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
}
