import TestSupport
import Testing

@testable import Metering

/// The pre-tokenizer's shortcuts (``Pretokenizer/fastPaths``) against its general path, which matches
/// each pattern's alternatives in order.
@Suite("Pre-tokenizer fast paths")
struct PretokenizerFastPathTests {
    @Test("U+4E00–U+9FFF are letters in both of o200k's case classes, as the CJK fast path assumes")
    func cjkIdeographsAreLo() {
        let table = CharacterClassTable.shared
        let expected: CharacterClass = [.letter, .upperish, .lowerish]
        let odd = (UInt32(0x4E00)...0x9FFF).filter { CharacterClass(rawValue: table.flags($0)) != expected }
        #expect(odd.isEmpty, "\(odd.prefix(5).map { String($0, radix: 16) })")
    }

    static func pieceEnds(_ text: String, _ encoding: TokenEncoding, fastPaths: Bool) -> [Int] {
        var text = text
        return text.withUTF8 { (utf8: UnsafeBufferPointer<UInt8>) -> [Int] in
            let splitter = Pretokenizer(text: utf8, pattern: encoding.pattern, classes: .shared, fastPaths: fastPaths)
            var ends: [Int] = []
            splitter.forEachPiece { _, end in ends.append(end) }
            return ends
        }
    }

    /// Counts (and records the first few) texts that the fast paths split elsewhere than the general path:
    /// piece boundaries, not just tokens, since a wrong split often encodes to the same tokens.
    static func checkSplits(_ text: String, _ encoding: TokenEncoding, _ name: String, mismatches: inout Int) {
        if pieceEnds(text, encoding, fastPaths: true) != pieceEnds(text, encoding, fastPaths: false) {
            mismatches += 1
            if mismatches < 4 { Issue.record("\(name) differs on \(text.debugDescription)") }
        }
    }

    @Test(
        "runs of printable ASCII split by bit masks as the general path splits them", arguments: TokenEncoding.names)
    func asciiRuns(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let inRun = Array("ABCZazqsQ0123456789+/=-_.,:;()[]{}<>!?#$%&*@\\|^`~\"").map(String.init)
        // Bytes and scalars that end a run, or change how its last piece ends.
        let breaking = [" ", "'", "\n", "\r\n", "\t", "é", "٣", "\u{301}", "ſ", "中", "\u{7F}", "\u{1}", "'s", "ǅ"]
        var rng = SplitMix(seed: 7)
        var mismatches = 0
        var runsUsed = 0
        func check(_ text: String) {
            Self.checkSplits(text, encoding, name, mismatches: &mismatches)
            var text = text
            text.withUTF8 { utf8 in
                let splitter = Pretokenizer(text: utf8, pattern: encoding.pattern, classes: .shared)
                if splitter.beginsRun(0) && splitter.asciiRunStarts(from: 0) != 0 { runsUsed += 1 }
            }
        }
        for round in 0..<6000 {
            // Small alphabets make long digit runs, runs of marks and case runs; large ones mix them.
            let size = [3, 6, 12, inRun.count][round % 4]
            let offset = Int(rng.next() % UInt64(inRun.count))
            var text = ""
            for _ in 0..<(16 + Int(rng.next() % 180)) {
                if rng.next() % 40 == 0 {
                    text += breaking[Int(rng.next() % UInt64(breaking.count))]
                } else {
                    text += inRun[(offset + Int(rng.next() % UInt64(size))) % inRun.count]
                }
            }
            check(text)
        }
        // Digit runs of every length up to past a window, after letters and marks, at every phase.
        for length in 1...140 {
            for prefix in ["", "a", "+", "++", "Ab", "x/"] {
                check(prefix + String(repeating: "7", count: length) + "Qz+a")
            }
        }
        #expect(mismatches == 0)
        #expect(runsUsed > 2500, "the masks were used at the start of \(runsUsed) texts")
    }

    @Test("the bytes read eight at a time as ASCII whitespace are the ASCII scalars with White_Space")
    func asciiWhitespaceBytes() {
        let classes = CharacterClassTable.shared
        var wrong: [UInt8] = []
        for byte in 0...255 {
            let space = byte < 0x80 && CharacterClass(rawValue: classes.ascii[byte]).contains(.space)
            for lane in 0..<8 {
                // The byte in one lane, spaces in the others.
                let word: UInt64 =
                    0x2020_2020_2020_2020 & ~(0xFF << UInt64(8 * lane)) | UInt64(byte) << UInt64(8 * lane)
                let flagged = Pretokenizer.notSpaceBytes(word) != 0
                if flagged == space { wrong.append(UInt8(byte)) }
            }
        }
        #expect(wrong.isEmpty, "\(Set(wrong).sorted())")
    }

    @Test("runs of whitespace split as the general path splits them", arguments: TokenEncoding.names)
    func whitespaceRuns(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let spaces = [
            " ", "\t", " ", "\t", "\n", "\r", "\r\n", "\u{B}", "\u{C}", "\u{A0}", "\u{85}", "\u{2028}", "\u{3000}",
        ]
        let others = ["a", "Z", "1", ".", "中", "\u{1}", "\u{E}", "\u{1F}", "\u{7F}", "\u{301}", "'s"]
        var rng = SplitMix(seed: 31)
        var mismatches = 0
        for round in 0..<4000 {
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 6)) {
                // A run of up to 40 whitespace scalars (past several words): spaces and tabs alone in every
                // other text, all kinds in the rest; then up to two other scalars.
                let ascii = round % 2 == 0
                for _ in 0..<Int(rng.next() % 40) {
                    text += spaces[Int(rng.next() % UInt64(ascii ? 4 : spaces.count))]
                }
                for _ in 0..<Int(rng.next() % 3) { text += others[Int(rng.next() % UInt64(others.count))] }
            }
            Self.checkSplits(text, encoding, name, mismatches: &mismatches)
        }
        #expect(mismatches == 0)
    }

    @Test("fast and general paths split mixed ASCII, CJK and other text the same way", arguments: TokenEncoding.names)
    func sameSplits(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let alphabet = [
            "a", "Z", "q", " ", "'", "s", "ll", "你", "好", "世", "(", "-", "\n", "3", "é", "\u{301}", "ſ", "“",
            "，", "。", "\u{3000}", "１", "ア", "\u{2028}", "É", "ǅ", "\r\n", "0", "+", "/", "!", "…", "²", "٣",
            "\t", "\r", "Q",
        ]
        // Mostly letters too, so words run past the eight bytes the ASCII word path reads at a time.
        let letters = [
            "a", "b", "z", "A", "Q", "Z", "a", "e", "t", "T", "é", "\u{301}", "1", " ", "'s", "@", "`", "[", "{",
        ]
        var rng = SplitMix(seed: 99)
        var mismatches = 0
        for round in 0..<9000 {
            let (alphabet, length) = round % 3 == 2 ? (letters, 48) : (alphabet, 24)
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % UInt64(length))) {
                text += alphabet[Int(rng.next() % UInt64(alphabet.count))]
            }
            Self.checkSplits(text, encoding, name, mismatches: &mismatches)
        }
        #expect(mismatches == 0)
    }
}
