/// Finds the next byte of interest in a buffer eight bytes at a time: the meter's hot loops (SSE line
/// ends, JSON string bodies) look at every relayed byte, and most bytes are none of the ones they stop at.
enum ByteScan {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Nonzero when some byte of `word` is below `n` (n at most 0x80). The lowest set bit marks the
    /// first such byte exactly (a borrow can only mark bytes above a real one).
    @inline(__always)
    private static func hasByteBelow(_ word: UInt64, _ n: UInt8) -> UInt64 {
        (word &- ones &* UInt64(n)) & ~word & highs
    }

    /// Nonzero when some byte of `word` equals `b`.
    @inline(__always)
    private static func hasByte(_ word: UInt64, _ b: UInt8) -> UInt64 {
        hasByteBelow(word ^ (ones &* UInt64(b)), 1)
    }

    @inline(__always)
    private static func word(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt64 {
        UInt64(littleEndian: UnsafeRawPointer(bytes.baseAddress!).loadUnaligned(fromByteOffset: i, as: UInt64.self))
    }

    /// The index of the first LF or CR in `bytes[i..<end]`, or `end`.
    static func lineEnd(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var i = i
        while i + 8 <= end {
            let w = word(bytes, i)
            let found = hasByte(w, 0x0A) | hasByte(w, 0x0D)
            if found != 0 { return i + found.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < end && bytes[i] != 0x0A && bytes[i] != 0x0D { i += 1 }
        return i
    }

    /// The index of the first byte in `bytes[i..<end]` that ends or interrupts a JSON string's plain
    /// run: a quote, a backslash or a control character; or `end`.
    static func stringSpecial(_ bytes: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        var i = i
        while i + 8 <= end {
            let w = word(bytes, i)
            let found = hasByte(w, 0x22) | hasByte(w, 0x5C) | hasByteBelow(w, 0x20)
            if found != 0 { return i + found.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < end {
            let c = bytes[i]
            if c == 0x22 || c == 0x5C || c < 0x20 { break }
            i += 1
        }
        return i
    }
}
