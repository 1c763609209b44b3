import Foundation
import TestSupport
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

    /// Every piece merged by tiktoken's scan: the reference.
    static let scanOnly = EncodingOptions(backtrackFrom: .max, charCuts: false)

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
                encoding.forEachToken(text, options: Self.scanOnly) { reference.append(Int($0)) }
                // Also behind other text, so the memo carries over from one piece to the next.
                let mixed = "x " + text + " y " + text
                var mixedReference: [Int] = []
                encoding.forEachToken(mixed, options: Self.scanOnly) { mixedReference.append(Int($0)) }
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
            encoding.forEachToken(text, options: EncodingOptions(periodicFrom: .max, charCuts: false)) {
                reference.append(Int($0))
            }
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
