import TestSupport
import Testing

@testable import Metering

/// The search for cuts (`MergeTables.cutScan`, `BytePairEncoder.encodeAtCuts`): boundaries of a piece
/// that no token can span, so that the parts between them merge on their own; and the screen of
/// lookups by the same table (`MergeTables.mayBeToken`).
@Suite("Cuts in random letters")
struct CutSearchTests {
    static let encodings = BacktrackingEncoderTests.encodings
    static let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    static let base64 = letters + Array("0123456789+/".utf8)
    static let hex = Array("0123456789abcdef".utf8)

    /// `count` bytes drawn at random from `pool`.
    static func random(_ count: Int, from pool: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        (0..<count).map { _ in pool[Int(rng.next() % UInt64(pool.count))] }
    }

    /// The boundaries `scan` calls cuts in `bytes`, as indices k (the boundary before `bytes[k]`).
    static func cuts(_ encoding: TokenEncoding, _ bytes: [UInt8]) -> [Int] {
        bytes.withUnsafeBufferPointer { p in
            var scan = encoding.merges.cutScan(p.baseAddress!, p.count)
            var found: [Int] = []
            var k = 1
            while k < p.count {
                var mask = scan.next(k, min(p.count - k, 64))
                while mask != 0 {
                    found.append(k + mask.trailingZeroBitCount)
                    mask &= mask &- 1
                }
                k += 64
            }
            return found
        }
    }

    @Test("no token has a cut inside its own bytes, and none fails the screen", arguments: encodings)
    func tokensHaveNoCuts(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let v = encoding.vocabulary
        var withCuts = 0
        var refused = 0
        for r in 0..<v.tokenCount where v.offsets[r + 1] - v.offsets[r] >= 2 {
            let bytes = Array(v.tokenBytes(r))
            if !Self.cuts(encoding, bytes).isEmpty { withCuts += 1 }
            if bytes.count >= 3 && !Self.mayBeToken(encoding, bytes) { refused += 1 }
        }
        #expect(withCuts == 0)
        #expect(refused == 0)
    }

    static func mayBeToken(_ encoding: TokenEncoding, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { encoding.merges.mayBeToken($0.baseAddress!, $0.count) }
    }

    @Test("most random base64 fails the screen", arguments: encodings)
    func randomLettersFailTheScreen(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        var rng = SplitMix(seed: 0x5C2E)
        let passed = (0..<1000).filter { _ in Self.mayBeToken(encoding, Self.random(4, from: Self.base64, &rng)) }.count
        #expect(passed < 300, "\(name): \(passed)")
    }

    @Test("random base64 has a cut at about every other boundary in cl100k and qwen")
    func randomLettersHaveCuts() throws {
        var rng = SplitMix(seed: 0xC07)
        let text = Self.random(20_000, from: Self.base64, &rng)
        for name in ["cl100k_base", "qwen"] {
            let share = Double(Self.cuts(try TokenEncoding.named(name), text).count) / Double(text.count - 1)
            #expect(share > 0.35, "\(name): \(share)")
        }
        // Words have next to none.
        let words = Array(String(repeating: "Tokenizers merge frequent pairs of bytes into tokens. ", count: 40).utf8)
        #expect(Self.cuts(try TokenEncoding.named("cl100k_base"), words).count < 20)
    }

    /// tiktoken's result for one piece: the whole piece when it is a token, else its merge loop.
    static func reference(_ encoder: BytePairEncoder, _ p: UnsafeBufferPointer<UInt8>) -> [UInt32] {
        let whole = encoder.rank(p.baseAddress!, p.count)
        if whole != UInt32.max { return [whole] }
        var out: [UInt32] = []
        encoder.encodeShort(p.baseAddress!, p.count) { out.append($0) }
        return out
    }

    @Test("pieces of random letters, digits and marks encode as tiktoken's merge loop does", arguments: encodings)
    func randomPieces(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        let others = Array("0123456789+/-_=.'\u{e9}\u{4e2d}".utf8)
        var rng = SplitMix(seed: 0xC075 ^ UInt64(name.utf8.count))
        var mismatches = 0
        var split = 0
        BacktrackingEncoderTests.withEncoder(encoding) { encoder in
            #expect(encoder.searchesCuts)
            for round in 0..<6000 {
                // Mostly letters; every fourth piece also has other bytes, which no cut touches.
                let length = 4 + Int(rng.next() % (round % 10 == 0 ? 300 : 40))
                let piece = (0..<length).map { _ in
                    round % 4 == 0 && rng.next() % 8 == 0
                        ? others[Int(rng.next() % UInt64(others.count))] : Self.letters[Int(rng.next() % 52)]
                }
                piece.withUnsafeBufferPointer { p in
                    var routed: [UInt32] = []
                    encoder.encodeSearchingCuts(p.baseAddress!, p.count) { routed.append($0) }
                    if routed != Self.reference(encoder, p) {
                        mismatches += 1
                        if mismatches < 4 { Issue.record("\(name) mismatch on \(piece)") }
                    }
                    var parts = 0
                    if encoder.encodeAtCuts(p.baseAddress!, p.count, emit: { _ in parts += 1 }) { split += 1 }
                }
            }
        }
        #expect(mismatches == 0)
        // The test is about the cut route: most pieces take it.
        #expect(split > 3000)
    }

    @Test("texts of base64 look like encoded data, and prose, code and short texts do not")
    func encodedTexts() {
        func looksEncoded(_ text: String) -> Bool {
            var text = text
            return text.withUTF8 { BytePairEncoder.looksEncoded($0) }
        }
        var rng = SplitMix(seed: 0xB64E)
        let base64 = String(decoding: Self.random(3000, from: Self.base64, &rng), as: UTF8.self)
        #expect(looksEncoded(base64))
        #expect(looksEncoded("data:image/png;base64," + base64))
        #expect(!looksEncoded(String(base64.prefix(63))))
        let prose = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 60)
        #expect(!looksEncoded(prose))
        #expect(!looksEncoded(prose + String(base64.prefix(200))))
        let code = String(
            repeating: "let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)\n", count: 30)
        #expect(!looksEncoded(code))
    }

    @Test("texts that look like encoded data count as by the ordinary path", arguments: encodings)
    func wholeTexts(name: String) throws {
        let encoding = try TokenEncoding.named(name)
        var rng = SplitMix(seed: 0x7E27 ^ UInt64(name.utf8.count))
        var mismatches = 0
        var encoded = 0
        for round in 0..<300 {
            // Base64 (sometimes with line breaks or padding), keys and hashes, and some words between.
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let bytes = Self.random(16 + Int(rng.next() % 700), from: round % 5 == 4 ? Self.hex : Self.base64, &rng)
                var blob = String(decoding: bytes, as: UTF8.self)
                if round % 3 == 1 { blob += "==\n" }
                if round % 4 == 2 {
                    // Bytes outside base64 inside the pieces: accents, marks that keys and URLs use.
                    for insert in ["été", "naïve", "-_", "=.", ":", "中文", "'s"] where rng.next() % 2 == 0 {
                        let at = blob.index(blob.startIndex, offsetBy: Int(rng.next() % UInt64(blob.count)))
                        blob.insert(contentsOf: insert, at: at)
                    }
                }
                text += blob + (rng.next() % 2 == 0 ? " sk-" : " Bearer ")
            }
            var copy = text
            if copy.withUTF8({ BytePairEncoder.looksEncoded($0) }) { encoded += 1 }
            if !encoding.encodesAsReference(text, encodedPaths: false) {
                mismatches += 1
                if mismatches < 4 { Issue.record("\(name) mismatch on \(text)") }
            }
        }
        #expect(mismatches == 0)
        #expect(encoded > 150)
    }

    @Test("o200k does not search for cuts, and cl100k and qwen do")
    func whichEncodingsSearch() throws {
        for name in Self.encodings {
            let encoding = try TokenEncoding.named(name)
            let searches = encoding.vocabulary.bytes.withUnsafeBufferPointer {
                encoding.encoder(bytes: $0, pairMemo: nil).searchesCuts
            }
            #expect(searches == (name != "o200k_base"))
        }
    }
}

extension TokenEncoding {
    /// Whether `encode` and `count` agree with the token ids of `text` with the given fast paths
    /// switched off (the reference).
    func encodesAsReference(_ text: String, encodedPaths: Bool = true, charCuts: Bool = true) -> Bool {
        var reference: [Int] = []
        forEachToken(text, options: EncodingOptions(encodedPaths: encodedPaths, charCuts: charCuts)) {
            reference.append(Int($0))
        }
        return encode(text) == reference && count(text) == reference.count
    }
}
