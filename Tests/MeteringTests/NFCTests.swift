import Foundation
import TestSupport
import Testing

@testable import Metering

/// Qwen's NFC, which hands only the stretches that can change to Foundation.
@Suite("NFC for qwen")
struct NFCTests {
    static func assigned(_ v: UInt32) -> Unicode.Scalar? {
        guard let s = Unicode.Scalar(v), s.properties.generalCategory != .unassigned,
            s.properties.generalCategory != .privateUse
        else { return nil }
        return s
    }

    @Test("every scalar called stable has combining class 0 and is left alone by NFC")
    func stableScalars() {
        var bad: [UInt32] = []
        for v in UInt32(0)...0x10FFFF where NFC.isStable(v) {
            guard let s = Self.assigned(v) else { continue }
            let text = String(Character(s))
            // Compared as bytes: String's == is canonical equivalence, under which NFC never differs.
            if s.properties.canonicalCombiningClass != .notReordered
                || !text.precomposedStringWithCanonicalMapping.utf8.elementsEqual(text.utf8)
            {
                bad.append(v)
            }
        }
        #expect(bad.isEmpty, "\(bad.prefix(10).map { String($0, radix: 16) })")
    }

    /// Every scalar that is a later part of some scalar's canonical decomposition: those may compose
    /// with the scalar before them.
    static let laterParts: Set<UInt32> = {
        var parts = Set<UInt32>()
        for v in UInt32(0x80)...0x10FFFF {
            guard let s = assigned(v) else { continue }
            for part in String(Character(s)).decomposedStringWithCanonicalMapping.unicodeScalars.dropFirst() {
                parts.insert(part.value)
            }
        }
        return parts
    }()

    @Test("no stable scalar can compose with the scalar before it")
    func noStableSecond() {
        let bad = Self.laterParts.filter { NFC.isStable($0) }.sorted()
        #expect(bad.isEmpty, "\(bad.prefix(10).map { String($0, radix: 16) })")
    }

    /// The table behind ``NFC/isStable(_:)`` from U+0300 to U+2FFF, recomputed from this
    /// Swift's Unicode data: assigned, combining class 0, NFC leaves it alone, and never the second
    /// part of a canonical decomposition (so it cannot compose with the scalar before it). When they
    /// differ (a new Swift with a new Unicode version), the test prints the table to paste into
    /// `NFCStableTable.swift`.
    @Test("the NFC stability table from U+0300 to U+2FFF is what this Swift's Unicode data gives")
    func stableTable() {
        let second = Self.laterParts
        var words = [UInt64](repeating: 0, count: (0x3000 - 0x300) / 64)
        for v in UInt32(0x300)..<0x3000 {
            guard let s = Self.assigned(v), s.properties.canonicalCombiningClass == .notReordered,
                !second.contains(v)
            else { continue }
            let text = String(Character(s))
            guard text.precomposedStringWithCanonicalMapping.utf8.elementsEqual(text.utf8) else { continue }
            let i = Int(v - 0x300)
            words[i >> 6] |= 1 << UInt64(i & 63)
        }
        let matches = words == NFC.stableBits
        if !matches {
            let lines = stride(from: 0, to: words.count, by: 5).map { start in
                words[start..<min(start + 5, words.count)].map { "0x" + String($0, radix: 16) }.joined(separator: ", ")
            }
            print("stableBits = [\n        " + lines.joined(separator: ",\n        ") + ",\n    ]")
        }
        #expect(matches)
    }

    @Test("empty and short texts normalize and count in every encoding")
    func emptyAndShort() throws {
        for text in ["", "a", "abcdefg", "abcdefgh", "e\u{301}", String(repeating: "z", count: 17) + "e\u{301}"] {
            #expect(NFC.normalize(text).utf8.elementsEqual(text.precomposedStringWithCanonicalMapping.utf8))
        }
        for name in TokenEncoding.names {
            let encoding = try TokenEncoding.named(name)
            #expect(encoding.count("") == 0)
            #expect(encoding.encode("").isEmpty)
        }
    }

    /// Where Swift's own normalization (6.3) departs from the standard, and from Python's
    /// `unicodedata`, which Qwen's tokenizer uses: each expected form is the standard's NFC.
    @Test("NFC is the Unicode standard's where Swift's normalization is not")
    func whereSwiftDeparts() {
        let cases: [(String, String)] = [
            // A syllable of leading and vowel jamo, then a trailing jamo: one syllable.
            ("\u{AC00}\u{11A8}", "\u{AC01}"),
            ("x\u{AC00}\u{11A8}y", "x\u{AC01}y"),
            ("\u{AC00}\u{11C2}", "\u{AC1B}"),
            ("\u{D558}\u{11AB}\u{AE00}", "\u{D55C}\u{AE00}"),
            // Already a full syllable, or a mark in between, or not a trailing jamo: left alone.
            ("\u{AC01}\u{11A8}", "\u{AC01}\u{11A8}"),
            ("\u{AC00}\u{301}\u{11A8}", "\u{AC00}\u{301}\u{11A8}"),
            ("\u{AC00}\u{11A7}", "\u{AC00}\u{11A7}"),
            // Jamo outside the composing ranges stay as they are.
            ("\u{1100}\u{1161}\u{11A7}", "\u{AC00}\u{11A7}"),
            ("\u{1113}\u{1161}", "\u{1113}\u{1161}"),
            ("\u{1100}\u{1176}\u{11A8}", "\u{1100}\u{1176}\u{11A8}"),
            ("\u{1112}\u{1175}\u{11C2}\u{11C3}", "\u{D7A3}\u{11C3}"),
            // A precomposed vowel sign that composes further with a length mark of class 0.
            ("\u{CA8}\u{CCA}\u{CD5}", "\u{CA8}\u{CCB}"),
            // Above U+FFFF: Swift composes U+20041 (an ideograph) with U+0301 as if it were U+0041.
            ("\u{20041}\u{301}", "\u{20041}\u{301}"),
            ("\u{10065}\u{308}x", "\u{10065}\u{308}x"),
            ("\u{11099}\u{110BA}", "\u{1109A}"),
            ("\u{1D157}\u{1D165}", "\u{1D157}\u{1D165}"),
            // Tibetan vowel signs of class 0 that decompose into marks of classes 129–132, which sort
            // before a mark of class 230 in front of them.
            ("\u{301}\u{F73}", "\u{F71}\u{F72}\u{301}"),
            ("x\u{301}\u{F75}", "x\u{F71}\u{F74}\u{301}"),
            ("x\u{301}\u{F81}", "x\u{F71}\u{F80}\u{301}"),
            ("a\u{308}\u{F73}", "\u{E4}\u{F71}\u{F72}"),
        ]
        func hex(_ s: String) -> String { s.unicodeScalars.map { String($0.value, radix: 16) }.joined(separator: " ") }
        for (text, expected) in cases {
            let got = NFC.normalize(text)
            #expect(got.unicodeScalars.elementsEqual(expected.unicodeScalars), "\(hex(text)) → \(hex(got))")
        }
    }

    @Test("every scalar Swift's normalization may get wrong sends its segment to ICU, and ordinary text does not")
    func icuScalars() {
        func needsICU(_ text: String) -> Bool {
            var text = text
            return text.withUTF8 { NFC.needsICU($0) }
        }
        let risky =
            Array(0x1100...0x11FF) + Array(0xA960...0xA97F) + Array(0xAC00...0xD7FF) + [0xCCA, 0xF73, 0xF75, 0xF81]
            + Array(stride(from: 0x10000, through: 0x10FFFF, by: 97))
        let missed = risky.compactMap { Unicode.Scalar(UInt32($0)) }.filter { !needsICU("a\($0)\u{301}") }
        #expect(missed.isEmpty, "\(missed.prefix(5).map { String($0.value, radix: 16) })")
        for text in ["plain ASCII", "e\u{301}\u{323}", "中文测试", "हिन्दी", "Tiếng Việt", "\u{CC6}\u{CC2}\u{F71}\u{F72}"] {
            #expect(!needsICU(text), "\(text)")
        }
    }

    /// The quick-check table is derived at run time, the stability table is generated into the source:
    /// two readings of the same Unicode data, which must agree where they overlap.
    @Test("the quick-check table calls a scalar class 0 and quick-check Yes exactly where it is NFC-stable")
    func quickCheckAgreesWithStability() {
        var disagree: [UInt32] = []
        for v in UInt32(0x300)..<0x3000 {
            let isJamo = (0x1100...0x11FF).contains(v)  // stable, but left to ICU by the quick check
            if (NFC.quickCheckTable[Int(v - 0x300)] == 0) != NFC.isStable(v) && !isJamo {
                disagree.append(v)
            }
        }
        #expect(disagree.isEmpty, "\(disagree.prefix(10).map { String($0, radix: 16) })")
    }

    @Test("the NFC quick check passes only text NFC leaves alone, and passes ordered marks")
    func quickCheck() {
        func passes(_ text: String) -> Bool {
            var text = text
            return text.withUTF8 { NFC.passesQuickCheck($0) }
        }
        #expect(passes("\u{915}\u{94D}\u{937} \u{939}\u{93F}\u{928}\u{94D}\u{926}\u{940}"))  // viramas, matras
        #expect(passes("\u{5D0}\u{591}\u{592}"))  // classes 220, 230: in order
        #expect(!passes("\u{5D0}\u{592}\u{591}"))  // 230 before 220
        #expect(!passes("e\u{301}"))  // composes
        #expect(!passes("\u{212B}"))  // a singleton: NFC changes it
        #expect(!passes("\u{F73}"))  // NFC decomposes it
        #expect(!passes("\u{AC00}\u{11A8}"))  // Hangul goes to ICU
        // Soundness on random text dense with marks: whatever passes, NFC leaves alone.
        let alphabet: [String] = [
            "a", "e", "\u{915}", "\u{94D}", "\u{93C}", "\u{941}", "\u{5D0}", "\u{591}", "\u{592}", "\u{5B4}",
            "\u{5BC}", "\u{301}", "\u{323}", "\u{31B}", "\u{F71}", "\u{F72}", "\u{F80}", "\u{E48}", "\u{E38}",
            "\u{1AB0}", "\u{1DC0}", "\u{20D0}", "\u{302A}", "\u{3099}", "か", "ơ", "\u{CCA}", "\u{CD5}", " ",
        ]
        var rng = SplitMix(seed: 5)
        var passed = 0
        for _ in 0..<20000 {
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 6)) { text += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            guard passes(text) else { continue }
            passed += 1
            var copy = text
            let normalized = copy.withUTF8 { NFC.segment($0) }
            let scalars = text.unicodeScalars.map { String($0.value, radix: 16) }
            #expect(Array(normalized.utf8) == Array(text.utf8), "\(scalars)")
        }
        #expect(passed > 1000)
    }

    @Test("random mixed text normalizes as it does whole, in one segment")
    func randomText() {
        let alphabet: [String] = [
            "a", "e", "\u{301}", "\u{308}", "\u{323}", "“", "”", "─", "中", "\u{302B}", "\u{302A}", "が", "か",
            "\u{3099}", "\u{1100}", "\u{1161}", "\u{11A8}", "가", "Å", "\u{212B}", "\u{2000}", " ", "\n", "😀",
            "\u{FE0F}", "\u{0915}", "\u{093C}", "\u{0B47}", "\u{0B3E}", "ﬀ", "\u{2ADC}", "↓",
            // Letters the stability table calls stable next to the marks that compose with them.
            "и", "\u{306}", "й", "α", "\u{301}", "ά", "\u{374}", "ا", "\u{653}", "آ", "ש", "\u{5C1}",
            "\u{BC6}", "\u{BBE}", "\u{BD7}",
            // What Swift's normalization gets wrong (``NFC/segment(_:)``).
            "\u{F73}", "\u{F75}", "\u{F81}", "\u{F71}", "\u{F72}", "각", "\u{11C2}", "\u{11A7}", "\u{1113}",
            "\u{CCA}", "\u{CD5}", "\u{20041}", "\u{10065}", "\u{11099}", "\u{110BA}", "\u{1D157}", "\u{1D165}",
            // Stable stretches longer than the gap at which NFC.normalize stops joining runs into one segment.
            String(repeating: "ж", count: 40), String(repeating: "x", count: 70),
            // ASCII, which NFC.normalize skips eight bytes at a time, ending in letters that compose with a mark.
            "abcdefge", "xyzwvutsrqpa", "0123456789ABCDEa",
        ]
        var rng = SplitMix(seed: 7)
        var mismatches = 0
        for _ in 0..<6000 {
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 12)) { text += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            var copy = text
            let whole = copy.withUTF8 { NFC.segment($0) }
            if Array(NFC.normalize(text).utf8) != Array(whole.utf8) {
                mismatches += 1
                if mismatches < 4 {
                    Issue.record("NFC differs on \(text.unicodeScalars.map { String($0.value, radix: 16) })")
                }
            }
        }
        #expect(mismatches == 0)
    }
}
