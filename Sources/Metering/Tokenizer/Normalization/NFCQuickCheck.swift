import Foundation

/// The Unicode standard's quick check for NFC (UAX #15), which lets text dense with marks that are
/// already in order and compose with nothing (Devanagari viramas and vowel signs) skip Foundation.
extension NFC {
    /// Whether NFC leaves the segment as it is: every scalar's NFC_Quick_Check is Yes and the combining
    /// classes of each run of marks never decrease. Conservative: a scalar outside U+0300–U+2FFF passes
    /// only if it is NFC-stable, and one that may compose with the scalar before it counts as failing
    /// (``quickCheckTable``).
    static func passesQuickCheck(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        let table = quickCheckTable
        var i = 0
        var last: UInt8 = 0
        while i < u.count {
            if u[i] < 0x80 {
                last = 0
                i += 1
                continue
            }
            let (v, length) = u.scalar(at: i)
            i += length
            if v < 0x300 {
                last = 0
            } else if v < 0x3000 {
                let ccc = table[Int(v - 0x300)]
                if ccc == 0xFF || (ccc != 0 && ccc < last) { return false }
                last = ccc
            } else if isStable(v) {
                last = 0
            } else {
                return false
            }
        }
        return true
    }

    /// For U+0300–U+2FFF: the canonical combining class, or 0xFF where NFC's quick check is not Yes:
    /// unassigned, changed by NFC on its own, or the second part of some canonical decomposition (so
    /// it may compose with the scalar before it), or a Hangul jamo (composed by ICU, see
    /// ``segment(_:)``). Derived once from this Swift's Unicode data, when qwen first normalizes.
    static let quickCheckTable: [UInt8] = {
        var secondParts = Set<UInt32>()
        for range in [UInt32(0xC0)..<0x3100, 0xF900..<0xFB50] {
            for v in range {
                guard let s = Unicode.Scalar(v), s.properties.generalCategory != .unassigned else { continue }
                secondParts.formUnion(
                    String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars.dropFirst().map(\.value))
            }
        }
        return (UInt32(0x300)..<0x3000).map { v -> UInt8 in
            guard let s = Unicode.Scalar(v), s.properties.generalCategory != .unassigned,
                !secondParts.contains(v), !(0x1100...0x11FF).contains(v),
                String(Character(s)).precomposedStringWithCanonicalMapping.unicodeScalars.elementsEqual([s])
            else { return 0xFF }
            return s.properties.canonicalCombiningClass.rawValue
        }
    }()
}
