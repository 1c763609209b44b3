extension NFC {
    /// Scalars with canonical combining class 0 and NFC_Quick_Check = Yes, a conservative subset:
    /// NFC leaves them alone whatever surrounds them, and nothing before them interacts with anything
    /// after them. Everything below the combining marks (U+0300); from there to U+2FFF, the letters
    /// and signs of Greek, Cyrillic, Hebrew, Arabic, the Indic scripts, Thai and the rest that are
    /// neither marks nor the second part of a composition, by ``stableBits``; CJK symbols, kana and
    /// ideographs except the ideographic tone marks (U+302A–U+302F) and the combining kana voicing
    /// marks (U+3099, U+309A); Hangul syllables; variation selectors; full-width forms; and the emoji
    /// blocks.
    @inline(__always)
    static func isStable(_ v: UInt32) -> Bool {
        if v < 0x300 { return true }
        if v < 0x3000 {
            let i = Int(v &- 0x300)
            return stableBits[i >> 6] >> UInt64(i & 63) & 1 != 0
        }
        if v <= 0x9FFF { return !(0x302A...0x302F).contains(v) && v != 0x3099 && v != 0x309A }
        return (0xAC00...0xD7A3).contains(v) || (0xFE00...0xFE0F).contains(v) || (0xFF01...0xFFEF).contains(v)
            || (0x1F300...0x1FAFF).contains(v)
    }

    /// Which scalars from U+0300 to U+2FFF are NFC-stable (``isStable(_:)``), one bit each from
    /// U+0300 (bit 0 of word 0). Generated from the Swift standard library's and Foundation's Unicode
    /// data (Swift 6.3, Unicode 16.0) by the test "the NFC stability table from U+0300 to U+2FFF is
    /// what this Swift's Unicode data gives", which prints the table again when the data changes.
    static let stableBits: [UInt64] = [
        0x0, 0xbcef000000008000, 0xfffffffbffffd770, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffff07, 0xffffffffffffffff, 0xfffeffffffffffff, 0xfffffffffe7fffff,
        0x400000000000e7ff, 0x1f87ffffff0049, 0xfffffffff800ffff, 0xfffeffff000007ff, 0xffffffffffffffff,
        0xffffc260603fffff, 0xfffffffdbfff, 0xffffffffffffe000, 0x3ffffffffffff, 0xc7f007ffffffffff,
        0x7fff0110043fffff, 0xffff07ff41ffffff, 0xffffffff0003ffff, 0x4000003ff, 0xefffffffffffffff,
        0xffffffff00e1dfff, 0xa3c5fdfffff99fef, 0x3fffffcf0000599f, 0xc325fdfffff987ee, 0x7fffc010021987,
        0xe3edfdfffffbbfee, 0xfe03ffcf00011bbf, 0xa3edfdfffff99fee, 0xffffcf8020199f, 0x83ffc718d63dc7ec,
        0x7ffffc000011dc7, 0xe3fffdfffffddfff, 0xff80ffcf37001ddf, 0xe3effdfffffddfff, 0xeffcf70001ddb,
        0xa7fffffffffddfff, 0xffffffcfff70dddf, 0x2ffbfffffc7fffee, 0x1cffc07f5f007f, 0x80fffffffffffffe,
        0xffff0ff, 0x38ffffaffffff7d6, 0xf3ff705f, 0xfd5ffffffcffffff, 0xc2801dffef7bdef7,
        0xdd5fef7bdef7ff20, 0x7ffdfbf, 0xf97fbfffffffffff, 0xffffffffffffffff, 0xffffffffffffdfff,
        0xffffffffffff20bf, 0xffffffffffffffff, 0xffc00001ffffffff, 0xffffffffff, 0xfffffffffffffff8,
        0xffffffffffffffff, 0xffffffff3d7f3dff, 0x7f3dffffffff3dff, 0xffffffffff7fff3d, 0xffffffffff3dffff,
        0x1fffffff07ffffff, 0xffffffff03ffffff, 0x3f3fffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffff1fffffff, 0x1ffffffffffffff,
        0x6fffff800fffff, 0xddfff000fffff, 0xffffffffffffffff, 0x3ff03ff1ffbffff, 0xffffffff03ffffff,
        0x1ffffffffffffff, 0xffff05ffffffffff, 0x3fffffffffffff, 0x1ff0fff7fffffff, 0x1f3ffffffffff1,
        0xffff0fffffffffff, 0xffffffffc7ff03ff, 0xffffffffce7fffff, 0x1ffffe7fffffff, 0x40003fff03ff03ff,
        0x0, 0xffcfffffffffffff, 0xfff007ffffffdfef, 0xfffff3ffffffffff, 0xf003ffbfffffffff,
        0xf87fffffffffffff, 0xffffffffffffe3ff, 0xe7ffffffffff07ff, 0x4efde02000800ff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0x0, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffff3f3fffff, 0x1555ffffaaff3f3f, 0xb7dfffffffffffff,
        0x55dc37f7e7c7f5df, 0xfffffffffffffffc, 0xfff3ffdfffffffff, 0xffffffff1fff7fff, 0x1de0000003,
        0xfffff3bfffffffff, 0xffffffffffffffff, 0xffffffffffff0fff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xfffff9ffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0x3ffffffffff, 0xffffffff000007ff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffefffffff,
        0xffffffffffffffff, 0xffcfffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff,
        0xffffffffffffffff, 0xffffffffffffffff, 0xfe0c7fffffffffff, 0xffff20bfffffffff, 0x180ffffffffff,
        0x7f7f7f7f007fffff, 0x7f7f7f7f, 0xffffffffffffffff, 0x3fffffff, 0xfffffffffbffffff,
        0xfffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xffff0000003fffff,
    ]
}
