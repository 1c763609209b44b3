import TestSupport
import Testing

@testable import Metering

/// Cuts between three-byte characters (`MergeTables.isCharCut`, `BytePairEncoder.encodeAtCharCuts`):
/// boundaries between two CJK characters that no token can span, so that the parts between them merge
/// on their own.
@Suite("Cuts between CJK characters")
struct CharacterCutTests {
    static let encodings = BacktrackingEncoderTests.encodings

    static func isCut(_ encoding: TokenEncoding, _ bytes: [UInt8], at k: Int) -> Bool {
        bytes.withUnsafeBufferPointer { encoding.merges.isCharCut($0.baseAddress! + k) }
    }

    /// A random ideograph of U+4E00–U+9FFF, most of them rare.
    static func ideograph(_ rng: inout SplitMix) -> Character {
        Character(Unicode.Scalar(0x4E00 + UInt32(rng.next() % 0x5200))!)
    }

    @Test("no token spans a boundary judged a cut", arguments: encodings)
    func tokensSpanNoCut(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let v = encoding.vocabulary
        func isLead(_ b: UInt8) -> Bool { b & 0xF0 == 0xE0 }
        func isTrail(_ b: UInt8) -> Bool { b & 0xC0 == 0x80 }
        let leads = Array((0xE0 as UInt8)...0xEF)
        let trails = Array((0x80 as UInt8)...0xBF)
        var places = 0
        var checked = 0
        var spanned = 0
        var text = [UInt8](repeating: 0, count: 6)
        for r in 0..<v.tokenCount {
            let t = Array(v.tokenBytes(r))
            // Every place where the token could lie across `x0 x1 x2 | y0 y1 y2`: its bytes k - 1 and k
            // are x2 and y0, and each of the other four is the token's own or, past its ends, any byte
            // of its shape (the tables judge characters whole, so every one is tried).
            for k in t.indices.dropFirst() where isTrail(t[k - 1]) && isLead(t[k]) {
                let around = [(-3, leads), (-2, trails), (1, trails), (2, trails)].map { offset, any in
                    t.indices.contains(k + offset) ? [t[k + offset]].filter { any.contains($0) } : any
                }
                if around.contains(where: \.isEmpty) { continue }
                places += 1
                (text[2], text[3]) = (t[k - 1], t[k])
                text.withUnsafeMutableBufferPointer { p in
                    for x0 in around[0] {
                        for x1 in around[1] {
                            for y1 in around[2] {
                                for y2 in around[3] {
                                    (p[0], p[1], p[4], p[5]) = (x0, x1, y1, y2)
                                    checked += 1
                                    if encoding.merges.isCharCut(UnsafePointer(p.baseAddress! + 3)) { spanned += 1 }
                                }
                            }
                        }
                    }
                }
            }
        }
        #expect(places > 500, "\(name): \(places)")
        #expect(checked > 100_000, "\(name): \(checked)")
        #expect(spanned == 0)
    }

    @Test("random ideographs have cuts at most boundaries, and more than prose")
    func randomIdeographsHaveCuts() throws {
        var rng = SplitMix(seed: 0xC1C7)
        let run = Array(String((0..<5000).map { _ in Self.ideograph(&rng) }).utf8)
        let prose = Array(String(repeating: "我们今天在北京开会讨论人工智能的发展和应用以及未来的计划", count: 40).utf8)
        func share(_ encoding: TokenEncoding, _ bytes: [UInt8]) -> Double {
            let boundaries = Array(stride(from: 3, to: bytes.count, by: 3))
            return Double(boundaries.filter { Self.isCut(encoding, bytes, at: $0) }.count) / Double(boundaries.count)
        }
        for (name, least) in [("cl100k_base", 0.95), ("o200k_base", 0.9), ("qwen", 0.75)] {
            let encoding = try TokenEncoding.named(name)
            let random = share(encoding, run)
            #expect(random > least, "\(name): \(random)")
            #expect(share(encoding, prose) < random, "\(name)")
        }
    }

    /// tiktoken's result for one piece: the whole piece when it is a token, else its merge loop.
    static func reference(_ encoder: BytePairEncoder, _ p: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        CutSearchTests.reference(encoder, p)
    }

    @Test("pieces of CJK and other bytes encode as tiktoken's merge loop does", arguments: encodings)
    func randomPieces(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        // Ideographs (rare and common), kana, Hangul, CJK punctuation, and bytes of other lengths or
        // out of place: ASCII, two- and four-byte characters, and lone lead and trail bytes.
        let common = Array("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年".unicodeScalars)
        let others: [[UInt8]] = [
            Array("a".utf8), Array(" ".utf8), Array("é".utf8), Array("🙂".utf8), Array("𠀀".utf8), Array("あ".utf8),
            Array("한".utf8), Array("，".utf8), Array("。".utf8), [0xE4], [0x80], [0xE4, 0xB8], [0xBF, 0xE5],
        ]
        var rng = SplitMix(seed: 0xC1C8 ^ UInt64(name.utf8.count))
        var mismatches = 0
        var split = 0
        BacktrackingEncoderTests.withEncoder(encoding) { plain in
            var encoder = plain
            encoder.charCutSearch = .everyPiece
            for round in 0..<3000 {
                var piece: [UInt8] = []
                let characters = 2 + Int(rng.next() % (round % 10 == 0 ? 200 : 30))
                for _ in 0..<characters {
                    switch rng.next() % 16 {
                    case 0..<9: piece += Array(String(Self.ideograph(&rng)).utf8)
                    case 9..<13: piece += Array(String(common[Int(rng.next() % UInt64(common.count))]).utf8)
                    default:
                        if round % 3 == 0 { piece += others[Int(rng.next() % UInt64(others.count))] }
                    }
                }
                if piece.isEmpty { continue }
                piece.withUnsafeBufferPointer { p in
                    let whole = encoder.rank(p.baseAddress!, p.count)
                    var routed: [UInt32] = []
                    if whole != UInt32.max {
                        routed = [whole]
                    } else if p.count == 1 {
                        encoder.encode(p.baseAddress!, 1) { routed.append($0) }
                    } else {
                        encoder.merge(p.baseAddress!, p.count) { routed.append($0) }
                    }
                    if routed != Self.reference(encoder, p) {
                        mismatches += 1
                        if mismatches < 4 { Issue.record("\(name) mismatch on \(piece)") }
                    }
                    if p.count >= 6 && encoder.encodeAtCharCuts(p.baseAddress!, p.count, emit: { _ in }) { split += 1 }
                }
            }
        }
        #expect(mismatches == 0)
        // The test is about the cut route: many pieces take it.
        #expect(split > 400, "\(name): \(split)")
    }

    @Test("texts of CJK count as without cuts between characters", arguments: encodings)
    func wholeTexts(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let segments = [
            "我们今天在北京开会，讨论人工智能的发展。", "東京は日本の首都です。", "한국어 문장입니다。", "Hello 世界",
            "naïve café", "🙂👍🏽", "𠀀𠀁", "12345", "「引用」", " ", "\n", "ＡＢＣ", "。",
        ]
        var rng = SplitMix(seed: 0xC1C9 ^ UInt64(name.utf8.count))
        var mismatches = 0
        for _ in 0..<200 {
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 6)) {
                if rng.next() % 2 == 0 {
                    // A run of random ideographs, long enough for every encoding's search.
                    text += String((0..<(1 + Int(rng.next() % 150))).map { _ in Self.ideograph(&rng) })
                } else {
                    text += segments[Int(rng.next() % UInt64(segments.count))]
                }
            }
            if !encoding.encodesAsReference(text, charCuts: false) {
                mismatches += 1
                if mismatches < 4 { Issue.record("\(name) mismatch on \(text)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("cl100k searches pieces of two characters, o200k and qwen only long runs")
    func whichPiecesAreSearched() throws {
        let two = Array("中文".utf8)
        let long = Array(String(repeating: "中", count: 22).utf8)  // 66 bytes; 63 without its last
        for name in Self.encodings {
            let encoding = try TokenEncoding.named(name)
            let searched = encoding.vocabulary.bytes.withUnsafeBufferPointer { all in
                let encoder = encoding.encoder(bytes: all, pairMemo: nil)
                return [two, long, Array(long.dropLast(3))].map { piece in
                    piece.withUnsafeBufferPointer { encoder.searchesCharCuts($0.baseAddress!, $0.count) }
                }
            }
            #expect(searched == (name == "cl100k_base" ? [true, true, true] : [false, true, false]), "\(name)")
        }
    }
}
