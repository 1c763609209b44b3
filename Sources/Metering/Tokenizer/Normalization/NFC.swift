import Foundation

/// Unicode NFC as Qwen's reference tokenizer applies it (Python's `unicodedata`, the standard's NFC),
/// before pre-tokenization. Only the stretches that can change are normalized; most text (English,
/// Chinese, code) is neither decoded nor copied.
enum NFC {
    /// NFC of `text`. Only the stretches that can change are handed to Foundation: each run of scalars
    /// outside ``isStable(_:)`` together with the stable scalar before it (which may compose with it).
    /// A stable scalar is a normalization boundary, so the pieces normalize independently. Runs less
    /// than ``joinGap`` bytes apart go to Foundation together: in text dense with marks (vowel signs
    /// and viramas, accents) one call per run cost more than the rest.
    static func normalize(_ text: String) -> String {
        var text = text
        return text.withUTF8 { u -> String? in
            var i = 0
            var copied = 0
            var lastStable = -1
            var out: [UInt8] = []
            guard let start = u.baseAddress else { return nil }
            let raw = UnsafeRawPointer(start)
            while i < u.count {
                // ASCII and U+4000–U+9FFF (lead bytes E4–E9: CJK ideographs), the bulk of most text,
                // are stable; no need to decode them. ASCII goes eight bytes at a time.
                let high: UInt64 = 0x8080_8080_8080_8080
                if i + 8 <= u.count && raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & high == 0 {
                    lastStable = i + 7
                    i += 8
                    continue
                }
                let lead = u[i]
                if lead < 0x80 || (0xE4...0xE9).contains(lead) {
                    lastStable = i
                    i += lead < 0x80 ? 1 : 3
                    continue
                }
                let (value, length) = u.scalar(at: i)
                if Self.isStable(value) {
                    lastStable = i
                    i += length
                    continue
                }
                // A run of unstable scalars, with the stable scalar before it when there is one.
                let start = lastStable >= copied ? lastStable : i
                var end = i + length
                var stableFrom = -1  // where the stable scalars after the run so far began
                while end < u.count {
                    let (v, l) = u.scalar(at: end)
                    if Self.isStable(v) {
                        if stableFrom < 0 { stableFrom = end }
                        if end + l - stableFrom >= Self.joinGap { break }
                    } else {
                        stableFrom = -1
                    }
                    end += l
                }
                // End the segment where its last unstable run ends: a stable scalar is a boundary.
                if stableFrom >= 0 { end = stableFrom }
                if Self.passesQuickCheck(UnsafeBufferPointer(rebasing: u[start..<end])) {
                    // Already NFC: leave it where it is.
                    lastStable = -1
                    i = end
                    continue
                }
                if out.isEmpty { out.reserveCapacity(u.count + 16) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[copied..<start]))
                out.append(contentsOf: Self.segment(UnsafeBufferPointer(rebasing: u[start..<end])).utf8)
                copied = end
                lastStable = -1
                i = end
            }
            guard copied > 0 else { return nil }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: u[copied..<u.count]))
            return String(decoding: out, as: UTF8.self)
        } ?? text
    }

    static let joinGap = 64

    /// NFC of one segment of ``normalize(_:)``, as the Unicode standard and Python's `unicodedata`
    /// give it. Swift's own normalization (6.3, behind `precomposedStringWithCanonicalMapping`) is fast
    /// but departs from the standard above U+FFFF, for Hangul jamo, for U+0CCA U+0CD5 and for the marks
    /// of U+0F73, U+0F75 and U+0F81 (docs/tokenizer.md; the test "NFC is the Unicode standard's where
    /// Swift's normalization is not" has each case). A segment that holds any of those scalars
    /// (``needsICU(_:)``) goes to ICU instead, through `applyingTransform("Any-NFC")`, which is right
    /// on all of them but slower.
    static func segment(_ utf8: UnsafeBufferPointer<UInt8>) -> String {
        let segment = String(decoding: utf8, as: UTF8.self)
        if Self.needsICU(utf8), let normalized = segment.applyingTransform(Self.icuTransform, reverse: false) {
            return normalized
        }
        return segment.precomposedStringWithCanonicalMapping
    }

    static let icuTransform = StringTransform("Any-NFC")

    /// Whether valid UTF-8 holds a scalar whose segment Swift's normalization may get wrong
    /// (``segment(_:)``): anything above U+FFFF (four bytes), Hangul jamo (U+1100–U+11FF,
    /// U+A960–U+A97F, U+D7B0–U+D7FF) and syllables, U+0CCA, U+0F73, U+0F75 and U+0F81. Read from the
    /// bytes, a little more broadly: all of U+A940–U+A97F, and U+AC00–U+D7FF whole.
    static func needsICU(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        while i < u.count {
            let b = u[i]
            if b < 0xE0 {
                i += b < 0x80 ? 1 : 2
                continue
            }
            if b >= 0xF0 { return true }
            let b1 = u[i + 1]
            let b2 = u[i + 2]
            switch b {
            case 0xE0:
                // U+0CCA is E0 B3 8A; U+0F73, U+0F75 and U+0F81 are E0 BD B3, E0 BD B5 and E0 BE 81.
                if (b1 == 0xB3 && b2 == 0x8A) || (b1 == 0xBD && (b2 == 0xB3 || b2 == 0xB5))
                    || (b1 == 0xBE && b2 == 0x81)
                {
                    return true
                }
            case 0xE1: if (0x84...0x87).contains(b1) { return true }  // U+1100–U+11FF
            case 0xEA: if b1 == 0xA5 || b1 >= 0xB0 { return true }  // U+A940–U+A97F, U+AC00–U+AFFF
            case 0xEB, 0xEC: return true  // U+B000–U+CFFF
            case 0xED: if b1 <= 0x9F { return true }  // U+D000–U+D7FF
            default: break
            }
            i += 3
        }
        return false
    }
}
