/// Runs of printable ASCII with no space or apostrophe (base64, hex, keys, URLs, minified code), whose
/// piece starts come 64 bytes at a time from bit masks of the byte classes (``forEachPiece(_:)``).
extension Pretokenizer {
    /// From a piece start `i`, in the run of printable ASCII other than the space and the apostrophe
    /// that begins there (up to 64 bytes, read eight at a time, so the last bytes of the text are left
    /// out): bit k (k > 0) is set when a piece starts at `i + k`.
    ///
    /// Within such a run every pattern reduces to a few rules on the classes of a byte and the two
    /// before it (letters, digits and the other marks, P), so the bits come from shifted masks:
    /// - a run of P is one piece (` ?[^\s\p{L}\p{N}]+`), except that a single P before a letter is
    ///   the letter's word's prefix (`[^\r\n\p{L}\p{N}]?`), so a letter starts a piece after a digit
    ///   or after two P, and never after one P alone or another letter;
    /// - in o200k, a capital after a small letter also starts one (`[A-Z]*[a-z]+` and `[A-Z]+[a-z]*`);
    /// - digits go by three from the start of their run (`\p{N}{1,3}`), in qwen one by one (`\p{N}`).
    /// A boundary so found is exact when the three bytes it rests on are in the run; the piece that
    /// reaches the end of the run is left to the general path, which sees what follows. The patterns
    /// have no lookbehind, so nothing before `i` matters.
    @inline(never)
    func asciiRunStarts(from i: Int) -> UInt64 {
        let raw = UnsafeRawPointer(text.baseAddress! + i)
        var capitals: UInt64 = 0
        var small: UInt64 = 0
        var digits: UInt64 = 0
        var inRun: UInt64 = 0
        var offset = 0
        while offset < 64 && i + offset + 8 <= count {
            // As loaded for the mask functions, which read it little-endian themselves.
            let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            let w = UInt64(littleEndian: word)
            let x = w & (0x7F &* ByteLanes.ones)
            let ascii = ~w & (0x80 &* ByteLanes.ones)
            let run = Self.gather(Self.runBytes(word))
            capitals |= Self.gather(Self.letterMask(word, true, false)) << UInt64(offset)
            small |= Self.gather(Self.letterMask(word, false, true)) << UInt64(offset)
            digits |= Self.gather(ByteLanes.inRange(x, 0x30, 0x39) & ascii) << UInt64(offset)
            inRun |= run << UInt64(offset)
            offset += 8
            if run != 0xFF { break }
        }
        let zone = (~inRun).trailingZeroBitCount
        guard zone > 1 else { return 0 }
        let letters = capitals | small
        let marks = inRun & ~(letters | digits)
        var starts = marks & ~(marks << 1)
        let afterTwoMarks = marks << 1 & marks << 2
        starts |= letters & (digits << 1 | afterTwoMarks)
        switch pattern {
        case .o200k:
            starts |= capitals & small << 1
            starts |= Self.digitGroupStarts(digits)
        case .cl100k:
            starts |= Self.digitGroupStarts(digits)
        case .qwen:
            starts |= digits
        }
        let zoneMask = zone == 64 ? UInt64.max : (1 << UInt64(zone)) &- 1
        return starts & zoneMask & ~1
    }

    /// Whether the 16 bytes at `i` are in the run class. Prose, whose pieces mostly begin with a space,
    /// seldom looks for runs at all, and code only where a run holds several pieces: with 8 bytes,
    /// code looked for runs much more often than it found pieces in them, and was slower for it.
    @inline(__always)
    func beginsRun(_ i: Int) -> Bool {
        // The first two bytes alone rule out most pieces of prose and of one-byte pieces between spaces.
        guard i + 16 <= count, text[i] &- 0x21 < 0x5E, text[i + 1] &- 0x21 < 0x5E else { return false }
        let raw = UnsafeRawPointer(text.baseAddress! + i)
        return Self.runBytes(raw.loadUnaligned(as: UInt64.self))
            & Self.runBytes(raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) == 0x8080_8080_8080_8080
    }

    /// Bit 7 of each byte of `word` (little-endian) set where that byte is printable ASCII other than
    /// the space and the apostrophe.
    @inline(__always)
    static func runBytes(_ word: UInt64) -> UInt64 {
        let w = UInt64(littleEndian: word)
        let x = w & (0x7F &* ByteLanes.ones)
        let printable = ByteLanes.inRange(x, 0x21, 0x7E) & ByteLanes.notEqual(x, 0x27)
        return printable & ~w & (0x80 &* ByteLanes.ones)
    }

    /// Bit 7 of each byte, as eight bits (byte k → bit k).
    @inline(__always)
    static func gather(_ highBits: UInt64) -> UInt64 {
        (highBits >> 7 &* 0x0102_0408_1020_4080) >> 56
    }

    /// Where `\p{N}{1,3}` starts a piece among the digits marked in `digits` (bit per byte): at the
    /// start of each run, then every three digits.
    @inline(__always)
    static func digitGroupStarts(_ digits: UInt64) -> UInt64 {
        var starts = digits & ~(digits << 1)
        guard digits & digits << 1 & digits << 2 & digits << 3 != 0 else { return starts }
        var runs = starts
        while runs != 0 {
            let s = UInt64(runs.trailingZeroBitCount)
            let length = (~(digits >> s)).trailingZeroBitCount
            if length > 3 {
                let run = length == 64 ? UInt64.max : (1 << UInt64(length)) &- 1
                starts |= 0x9249_2492_4924_9249 << s & run << s
            }
            runs &= runs &- 1
        }
        return starts
    }
}
