import Foundation
import Testing

@testable import Metering

/// The backtracking encoder against tiktoken's own merge loop (`encodeShort`, which the conformance
/// vectors check against the real tiktoken), on inputs built to exercise merges across token
/// boundaries: concatenations of random vocabulary tokens, and runs over tiny alphabets.
@Suite("Backtracking encoder")
struct BacktrackingEncoderTests {
    static let encodings = ["o200k_base", "cl100k_base", "qwen"]

    /// An encoder over the encoding's tables, for the length of `body`.
    static func withEncoder<T>(
        _ encoding: TokenEncoding, backtrackFrom: Int = BytePairEncoder.defaultBacktrackFrom,
        periodicFrom: Int = BytePairEncoder.defaultPeriodicFrom, _ body: (BytePairEncoder) -> T
    ) -> T {
        encoding.vocabulary.bytes.withUnsafeBufferPointer { all in
            var encoder = BytePairEncoder(
                vocabulary: encoding.vocabulary, table: encoding.vocabulary.table.buffer, bytes: all,
                merges: encoding.merges, backtrackFrom: backtrackFrom)
            encoder.periodicFrom = periodicFrom
            return body(encoder)
        }
    }

    /// Both algorithms on the same bytes.
    static func both(_ encoding: TokenEncoding, _ bytes: [UInt8]) -> (fast: [UInt32], reference: [UInt32]) {
        withEncoder(encoding, backtrackFrom: 1) { encoder in
            bytes.withUnsafeBufferPointer { b in
                var fast: [UInt32] = []
                var reference: [UInt32] = []
                let ok = encoder.encodeBacktracking(b.baseAddress!, b.count) { fast.append($0) }
                #expect(ok)
                encoder.encodeShort(b.baseAddress!, b.count) { reference.append($0) }
                return (fast, reference)
            }
        }
    }

    @Test("every reachable token encodes to itself", arguments: encodings)
    func tokensEncodeToThemselves(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let v = encoding.vocabulary
        var failures = 0
        var unreachable = 0
        for r in 0..<v.tokenCount where v.offsets[r + 1] - v.offsets[r] >= 2 {
            if encoding.merges.length.base[r] == 0 {
                unreachable += 1
                // Unreachable really means BPE does not produce it from its own bytes.
                let (_, reference) = Self.both(encoding, Array(v.tokenBytes(r)))
                #expect(reference != [UInt32(r)])
                continue
            }
            let (fast, _) = Self.both(encoding, Array(v.tokenBytes(r)))
            if fast != [UInt32(r)] { failures += 1 }
        }
        #expect(failures == 0)
        #expect(unreachable == encoding.merges.unreachableCount)
    }

    @Test("pieces of two to four bytes: the unrolled merges agree with tiktoken's merge loop", arguments: encodings)
    func shortPieces(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        // Letters, digits and marks of base64 and code, a space, and bytes of a multi-byte character.
        let alphabet = Array("aAbBzZ019+/=._-' \n".utf8) + [0xE4, 0xB8, 0x80, 0xF0, 0x9F]
        var pieces: [[UInt8]] = []
        for a in alphabet {
            for b in alphabet {
                pieces.append([a, b])
                for c in alphabet {
                    pieces.append([a, b, c])
                    for d in alphabet { pieces.append([a, b, c, d]) }
                }
            }
        }
        var mismatches = 0
        Self.withEncoder(encoding) { encoder in
            for piece in pieces {
                piece.withUnsafeBufferPointer { p in
                    var fast: [UInt32] = []
                    var reference: [UInt32] = []
                    encoder.encode(p.baseAddress!, p.count) { fast.append($0) }
                    encoder.encodeShort(p.baseAddress!, p.count) { reference.append($0) }
                    if fast != reference { mismatches += 1 }
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("random letters are told from words and identifiers")
    func churningLetters() {
        func churns(_ s: String) -> Bool {
            let bytes = Array(s.utf8)
            return bytes.withUnsafeBufferPointer { BytePairEncoder.isChurningASCII($0.baseAddress!, $0.count) }
        }
        for word in [
            " FixedWidthInteger", "NIOAsyncSequenceProducer", " EventLoopPromise", "internationalization",
            "MAX_BUFFER_SIZE_IN_BYTES", " withUnsafeMutableBytes", "aBcDeFgHiJkLmNo",  // 15 bytes: too short
            "aBcDeFgHiJkLmNo\u{e9}p",  // not ASCII
            "HTTPSConnectionPool", " ChannelPipelineHandler",
        ] {
            #expect(!churns(word), "\(word)")
        }
        // The last two flip case too seldom, but have few vowels.
        for random in [
            "NthQmQlaowAWWmcDb", "/lakNnfLxMNYPzwS", "aRSmCXnlFWXGyGuEFqrLWoxALCIgPD", "aBcDeFgHiJkLmNoP",
            "/YCHLYQhiotYSXCeBd", "zRVIQfcgDkjBVTIRswwPYImVYY",
        ] {
            #expect(churns(random), "\(random)")
        }
        // Most random base64 letter runs of 16 or more count as random letters.
        var rng = SplitMix(seed: 64)
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var hits = 0
        for _ in 0..<1000 {
            let run = (0..<20).map { _ in letters[Int(rng.next() % 52)] }
            if run.withUnsafeBufferPointer({ BytePairEncoder.isChurningASCII($0.baseAddress!, $0.count) }) { hits += 1 }
        }
        #expect(hits > 950)
    }

    @Test("random letters of 16 to 60 bytes encode the same by either route", arguments: encodings)
    func randomLetterRuns(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
        var rng = SplitMix(seed: 0xB64)
        var mismatches = 0
        Self.withEncoder(encoding) { encoder in
            for _ in 0..<3000 {
                let run = (0..<(16 + Int(rng.next() % 45))).map { _ in letters[Int(rng.next() % 52)] }
                run.withUnsafeBufferPointer { p in
                    var routed: [UInt32] = []
                    var backtracked: [UInt32] = []
                    var scanned: [UInt32] = []
                    encoder.encode(p.baseAddress!, p.count) { routed.append($0) }
                    #expect(encoder.encodeBacktracking(p.baseAddress!, p.count) { backtracked.append($0) })
                    encoder.encodeShort(p.baseAddress!, p.count) { scanned.append($0) }
                    if routed != scanned || backtracked != scanned { mismatches += 1 }
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("random token concatenations encode as tiktoken's merge loop does", arguments: encodings)
    func randomConcatenations(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let v = encoding.vocabulary
        var rng = SplitMix(seed: 0x5EED ^ UInt64(name.utf8.count))
        var mismatches = 0
        for round in 0..<4000 {
            var bytes: [UInt8] = []
            let parts = 2 + Int(rng.next() % 24)
            for _ in 0..<parts {
                // Favour frequent (low-rank) tokens half the time, any token otherwise.
                let bound = round % 2 == 0 ? 4000 : v.tokenCount
                bytes.append(contentsOf: v.tokenBytes(Int(rng.next() % UInt64(bound))))
            }
            let (fast, reference) = Self.both(encoding, bytes)
            if fast != reference {
                mismatches += 1
                if mismatches < 4 { Issue.record("\(name) mismatch on \(bytes)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("runs over tiny alphabets encode as tiktoken's merge loop does", arguments: encodings)
    func tinyAlphabets(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let alphabets: [[String]] = [
            ["a", "b"], ["a", "aa", " "], ["0", "1", "9"], ["的", "是", "一"], ["=", "-", "\n"], ["ab", "c", "A"],
            ["\u{e9}", "e", "\u{301}"], ["🙂", "\u{200d}", "a"],
        ]
        var rng = SplitMix(seed: 42)
        var mismatches = 0
        for alphabet in alphabets {
            for _ in 0..<600 {
                var text = ""
                for _ in 0..<(1 + Int(rng.next() % 160)) { text += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
                let (fast, reference) = Self.both(encoding, Array(text.utf8))
                if fast != reference {
                    mismatches += 1
                    if mismatches < 4 { Issue.record("\(name) mismatch on \(text.debugDescription)") }
                }
            }
        }
        #expect(mismatches == 0)
    }

    /// Runs of one mark or a short unit make the encoder take back nearly every position (the longest
    /// match never stands), which switches on the memo of first valid candidates (`BytePairEncoder.pairMemo`).
    @Test("repetitive runs that make the encoder backtrack encode as tiktoken's merge loop does", arguments: encodings)
    func repetitiveRuns(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let units = ["/", "'", " \t", "\r\n", "-=", "ab", "!!?", "==", "\u{3000}", "é"]
        var rng = SplitMix(seed: 7)
        var mismatches = 0
        for unit in units {
            for round in 0..<6 {
                // Half of them long enough for the memo (`BytePairEncoder.pairMemoFromBytes`).
                let count = (round % 2 == 0 ? 8 : BytePairEncoder.pairMemoFromBytes) + Int(rng.next() % 300)
                let text = String(repeating: unit, count: count)
                var reference: [Int] = []
                encoding.forEachToken(text, backtrackFrom: .max, charCuts: false) { reference.append(Int($0)) }
                // Also behind other text, so the memo carries over from one piece to the next.
                let mixed = "x " + text + " y " + text
                var mixedReference: [Int] = []
                encoding.forEachToken(mixed, backtrackFrom: .max, charCuts: false) { mixedReference.append(Int($0)) }
                if encoding.encode(text) != reference || encoding.encode(mixed) != mixedReference {
                    mismatches += 1
                    if mismatches < 4 { Issue.record("\(name) mismatch on \(unit.debugDescription) × \(text.count)") }
                }
            }
        }
        #expect(mismatches == 0)
    }

    /// Long runs of one unit take the shortcut (`BytePairEncoder.encodePeriodic`), which must give what
    /// backtracking through the whole piece gives: on the piece's bytes alone, and through the
    /// pre-tokenizer with other text around.
    @Test("long runs of one unit encode as backtracking through them does", arguments: encodings)
    func periodicRuns(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let units = [
            "/", " \t", "'", "-=", "ab", "!!?", "==", "\r\n", "é", "\u{3000}", "a", " ", "...", "<|", "🙂",
            "abcdefghijklmnop", "Ab1", "\t\n",
        ]
        var rng = SplitMix(seed: 11)
        // And units made at random from marks, letters, spaces and multi-byte characters.
        let parts = ["a", "b", "A", " ", "\t", "/", "'", "=", "-", "\n", "é", "中", "1", ".", "s", "ll"]
        var randomUnits: [String] = []
        while randomUnits.count < 16 {
            var unit = ""
            for _ in 0..<(1 + Int(rng.next() % 6)) { unit += parts[Int(rng.next() % UInt64(parts.count))] }
            if unit.utf8.count <= BytePairEncoder.longestPeriod { randomUnits.append(unit) }
        }
        var runs = 0
        var shortcutTaken = 0
        var mismatches = 0
        for unit in units + units + randomUnits {
            runs += 1
            let count =
                (BytePairEncoder.defaultPeriodicFrom + unit.utf8.count - 1) / unit.utf8.count + Int(rng.next() % 3000)
            let bytes = Array(String(repeating: unit, count: count).utf8)
            let (shortcut, backtracked) = Self.withEncoder(encoding, backtrackFrom: 1, periodicFrom: .max) { encoder in
                bytes.withUnsafeBufferPointer { b in
                    var shortcut: [UInt32] = []
                    let taken = encoder.encodePeriodic(b.baseAddress!, b.count) { shortcut.append($0) }
                    var backtracked: [UInt32] = []
                    _ = encoder.encodeBacktracking(b.baseAddress!, b.count) { backtracked.append($0) }
                    return (taken ? shortcut : nil, backtracked)
                }
            }
            if shortcut != nil { shortcutTaken += 1 }
            let text = "x " + String(decoding: bytes, as: UTF8.self) + " y?"
            var reference: [Int] = []
            encoding.forEachToken(text, periodicFrom: .max, charCuts: false) { reference.append(Int($0)) }
            if (shortcut != nil && shortcut != backtracked) || encoding.encode(text) != reference {
                mismatches += 1
                if mismatches < 4 { Issue.record("\(name) mismatch on \(unit.debugDescription) × \(count)") }
            }
        }
        #expect(mismatches == 0)
        // Every one of these runs repeats a unit of at most 16 bytes: the shortcut must be taken (the
        // random ones may repeat a shorter unit, which is still one).
        #expect(shortcutTaken == runs)
    }
}

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
