import Foundation

/// A tiktoken-compatible encoding: o200k_base, cl100k_base or qwen.
///
/// Encoding and counting treat special-token text as ordinary text (like tiktoken's
/// `encode_ordinary`), which is what user-supplied prompts need. Vocabularies ship as package
/// resources and load on first use, once per process, from any thread.
public final class TokenEncoding: Sendable {
    public let name: String
    let pattern: PretokenizerPattern
    let vocabulary: BPEVocabulary
    let merges: MergeTables
    /// Special tokens by id, for decoding.
    let specialTokens: [Int: String]
    /// Qwen's reference tokenizer normalizes to NFC before encoding.
    let normalizesNFC: Bool

    init(name: String, pattern: PretokenizerPattern, vocabulary: BPEVocabulary, specialTokens: [Int: String], nfc: Bool)
    {
        self.name = name
        self.pattern = pattern
        self.vocabulary = vocabulary
        self.merges = MergeTables(vocabulary: vocabulary)
        self.specialTokens = specialTokens
        self.normalizesNFC = nfc
    }

    public struct UnknownEncoding: Error, CustomStringConvertible {
        public var name: String
        public var description: String {
            "unknown encoding '\(name)' (known: \(TokenEncoding.names.joined(separator: ", ")))"
        }
    }

    public static let names = ["o200k_base", "cl100k_base", "qwen"]

    /// The encoding with this name, loading it on first use.
    public static func named(_ name: String) throws -> TokenEncoding {
        switch name {
        case "o200k_base": return try o200k.get()
        case "cl100k_base": return try cl100k.get()
        case "qwen": return try qwen.get()
        default: throw UnknownEncoding(name: name)
        }
    }

    // Swift initializes static lets once, thread-safely, on first access.
    private static let o200k = Result {
        TokenEncoding(
            name: "o200k_base", pattern: .o200k, vocabulary: try BPEVocabulary.loadResource(named: "o200k_base"),
            specialTokens: [199_999: "<|endoftext|>", 200_018: "<|endofprompt|>"], nfc: false)
    }
    private static let cl100k = Result {
        TokenEncoding(
            name: "cl100k_base", pattern: .cl100k, vocabulary: try BPEVocabulary.loadResource(named: "cl100k_base"),
            specialTokens: [
                100_257: "<|endoftext|>", 100_258: "<|fim_prefix|>", 100_259: "<|fim_middle|>",
                100_260: "<|fim_suffix|>", 100_276: "<|endofprompt|>",
            ], nfc: false)
    }
    private static let qwen = Result {
        var specials: [Int: String] = [151_643: "<|endoftext|>", 151_644: "<|im_start|>", 151_645: "<|im_end|>"]
        for i in 0..<205 { specials[151_646 + i] = "<|extra_\(i)|>" }
        return TokenEncoding(
            name: "qwen", pattern: .qwen, vocabulary: try BPEVocabulary.loadResource(named: "qwen"),
            specialTokens: specials, nfc: true)
    }

    // MARK: Encoding

    /// Calls `body` with each token id of `text`, in order. `backtrackFrom: .max` merges every piece
    /// with tiktoken's own algorithm, `periodicFrom: .max` backtracks through long runs of one unit
    /// too, and `fastPaths: false` pre-tokenizes without the ASCII and CJK shortcuts: the references
    /// the tests compare the fast paths with.
    @inline(__always)
    func forEachToken(
        _ text: String, backtrackFrom: Int = BytePairEncoder.defaultBacktrackFrom,
        periodicFrom: Int = BytePairEncoder.defaultPeriodicFrom, fastPaths: Bool = true, _ body: (UInt32) -> Void
    ) {
        var text = normalizesNFC ? Self.nfc(text) : text
        text.withUTF8 { utf8 in
            guard !utf8.isEmpty else { return }
            vocabulary.bytes.withUnsafeBufferPointer { bytes in
                func encodeAll(pairMemo: UnsafeMutablePointer<UInt64>?) {
                    var encoder = BytePairEncoder(
                        vocabulary: vocabulary, table: vocabulary.table.buffer, bytes: bytes, merges: merges,
                        backtrackFrom: backtrackFrom)
                    encoder.pairMemo = pairMemo
                    encoder.periodicFrom = periodicFrom
                    let splitter = Pretokenizer(
                        text: utf8, pattern: pattern, classes: .shared, fastPaths: fastPaths)
                    let base = utf8.baseAddress!
                    splitter.forEachPiece { start, end in encoder.encode(base + start, end - start, emit: body) }
                }
                // A short text cannot make the encoder churn for long; it skips the memo's allocation,
                // which costs a tiny text (a streamed delta) a fifth of its time.
                guard utf8.count >= BytePairEncoder.pairMemoFromBytes else { return encodeAll(pairMemo: nil) }
                withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 1 + BytePairEncoder.pairMemoSlots) { memo in
                    memo[0] = 0  // the rest is set up when a piece first needs it
                    encodeAll(pairMemo: memo.baseAddress)
                }
            }
        }
    }

    /// The byte offset where the last `pieces` pre-tokenization pieces of `text` begin (0 when it has
    /// no more pieces than that). Text before it splits the same way whatever is appended later, so a
    /// streaming counter can settle it.
    func settledPrefixLength(_ text: String, keepingPieces pieces: Int) -> Int {
        var text = text
        return text.withUTF8 { utf8 -> Int in
            guard !utf8.isEmpty else { return 0 }
            let splitter = Pretokenizer(text: utf8, pattern: pattern, classes: .shared)
            var starts = [Int](repeating: 0, count: pieces)
            var seen = 0
            splitter.forEachPiece { start, _ in
                starts[seen % pieces] = start
                seen += 1
            }
            return seen <= pieces ? 0 : starts[seen % pieces]
        }
    }

    /// Token ids of `text`, special-token text treated as ordinary text.
    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3)
        forEachToken(text) { out.append(Int($0)) }
        return out
    }

    /// The number of tokens `encode` would return, without building the array.
    public func count(_ text: String) -> Int {
        var n = 0
        forEachToken(text) { _ in n += 1 }
        return n
    }

    /// The bytes of the tokens (which need not be valid UTF-8 on their own).
    public func decodeBytes(_ tokens: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for t in tokens {
            if t >= 0 && t < vocabulary.tokenCount {
                out.append(contentsOf: vocabulary.tokenBytes(t))
            } else if let special = specialTokens[t] {
                out.append(contentsOf: special.utf8)
            }
        }
        return out
    }

    public func decode(_ tokens: [Int]) -> String {
        String(decoding: decodeBytes(tokens), as: UTF8.self)
    }

    /// NFC, as Qwen's tokenizer applies it. Only the stretches that can change are handed to
    /// Foundation: each run of scalars outside ``isNFCStable(_:)`` together with the stable scalar
    /// before it (which may compose with it). A stable scalar is a normalization boundary, so the
    /// pieces normalize independently, and most text (English, Chinese, code) is copied unchanged or
    /// not copied at all. Runs less than ``nfcJoinGap`` bytes apart go to Foundation together: in text
    /// dense with marks (vowel signs and viramas, accents) one call per run cost more than the rest.
    static func nfc(_ text: String) -> String {
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
                let (value, length) = Self.scalar(u, at: i)
                if Self.isNFCStable(value) {
                    lastStable = i
                    i += length
                    continue
                }
                // A run of unstable scalars, with the stable scalar before it when there is one.
                let start = lastStable >= copied ? lastStable : i
                var end = i + length
                var stableFrom = -1  // where the stable scalars after the run so far began
                while end < u.count {
                    let (v, l) = Self.scalar(u, at: end)
                    if Self.isNFCStable(v) {
                        if stableFrom < 0 { stableFrom = end }
                        if end + l - stableFrom >= Self.nfcJoinGap { break }
                    } else {
                        stableFrom = -1
                    }
                    end += l
                }
                // End the segment where its last unstable run ends: a stable scalar is a boundary.
                if stableFrom >= 0 { end = stableFrom }
                if out.isEmpty { out.reserveCapacity(u.count + 16) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[copied..<start]))
                let segment = String(decoding: UnsafeBufferPointer(rebasing: u[start..<end]), as: UTF8.self)
                out.append(contentsOf: Self.nfcSegment(segment).utf8)
                copied = end
                lastStable = -1
                i = end
            }
            guard copied > 0 else { return nil }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: u[copied..<u.count]))
            return String(decoding: out, as: UTF8.self)
        } ?? text
    }

    static let nfcJoinGap = 64

    /// NFC of one segment of ``nfc(_:)``, as the Unicode standard and Python's `unicodedata` (which
    /// Qwen's tokenizer uses) give it. Foundation's `precomposedStringWithCanonicalMapping` does the
    /// work, except where Swift's normalization (6.3) departs from them. A differential fuzz of the
    /// tokenizer against Python found these, and a check of every pair of marks, decomposable
    /// characters and decomposition parts (17.7 million, Hangul aside) against Python found no others:
    /// - **Hangul.** Swift composes jamo with ranges off by one: U+1100 U+1161 U+11A7 becomes U+AC00,
    ///   losing U+11A7 (not a trailing jamo), and U+1113 U+1161 becomes U+D7A4, which is no syllable;
    ///   and it leaves a syllable before a trailing jamo (U+AC00 U+11A8, which is U+AC01). So Hangul
    ///   composes here, by the standard's arithmetic (§3.12), and no jamo or syllable reaches
    ///   Foundation. They have combining class 0 and compose with nothing else, so the stretches
    ///   between them normalize on their own.
    /// - **U+0CCA before U+0CD5**, which is U+0CCB. Swift leaves the pair, but composes U+0CC6 U+0CC2
    ///   U+0CD5 (U+0CCA's decomposition, then U+0CD5) right.
    /// - **U+0F73, U+0F75 and U+0F81**, which have combining class 0 but decompose into marks of
    ///   classes 129–132: U+0301 U+0F73 is U+0F71 U+0F72 U+0301. Swift leaves U+0301 first; given the
    ///   decompositions (U+0F71 followed by U+0F72, U+0F74 and U+0F80), it sorts the marks. NFC never
    ///   composes them again (they are composition exclusions).
    /// Those four are handed to Foundation decomposed.
    static func nfcSegment(_ segment: String) -> String {
        @inline(__always) func isHangul(_ v: UInt32) -> Bool {
            (0x1100...0x11FF).contains(v) || (0xA960...0xA97F).contains(v) || (0xAC00...0xD7FF).contains(v)
        }
        @inline(__always) func isSpelledOut(_ v: UInt32) -> Bool {
            v == 0xCCA || v == 0xF73 || v == 0xF75 || v == 0xF81
        }
        guard segment.unicodeScalars.contains(where: { isHangul($0.value) || isSpelledOut($0.value) }) else {
            return segment.precomposedStringWithCanonicalMapping
        }
        let values = segment.unicodeScalars.map(\.value)
        var out = String.UnicodeScalarView()
        var pending = String.UnicodeScalarView()  // the stretch since the last Hangul, for Foundation
        func flush() {
            guard !pending.isEmpty else { return }
            out.append(contentsOf: String(pending).precomposedStringWithCanonicalMapping.unicodeScalars)
            pending = String.UnicodeScalarView()
        }
        var k = 0
        while k < values.count {
            let v = values[k]
            k += 1
            switch v {
            case 0xCCA: pending.append(contentsOf: ["\u{0CC6}", "\u{0CC2}"])
            case 0xF73: pending.append(contentsOf: ["\u{0F71}", "\u{0F72}"])
            case 0xF75: pending.append(contentsOf: ["\u{0F71}", "\u{0F74}"])
            case 0xF81: pending.append(contentsOf: ["\u{0F71}", "\u{0F80}"])
            case _ where !isHangul(v): pending.append(Unicode.Scalar(v)!)
            default:
                flush()
                var syllable = v
                if (0x1100...0x1112).contains(v) && k < values.count && (0x1161...0x1175).contains(values[k]) {
                    // A leading and a vowel jamo: 19 × 21 syllables, each of 28 (no trailing jamo or one).
                    syllable = 0xAC00 + ((v - 0x1100) * 21 + values[k] - 0x1161) * 28
                    k += 1
                }
                if (0xAC00...0xD7A3).contains(syllable) && (syllable - 0xAC00) % 28 == 0 && k < values.count
                    && (0x11A8...0x11C2).contains(values[k])
                {
                    syllable += values[k] - 0x11A7
                    k += 1
                }
                out.append(Unicode.Scalar(syllable)!)
            }
        }
        flush()
        return String(out)
    }

    /// The scalar value at byte `i` of valid UTF-8, and its length.
    @inline(__always)
    static func scalar(_ u: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32, Int) {
        let b0 = UInt32(u[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(u[i + 1]) & 0x3F, 2) }
        if b0 < 0xF0 { return ((b0 & 0x0F) << 12 | (UInt32(u[i + 1]) & 0x3F) << 6 | UInt32(u[i + 2]) & 0x3F, 3) }
        return (
            (b0 & 0x07) << 18 | (UInt32(u[i + 1]) & 0x3F) << 12 | (UInt32(u[i + 2]) & 0x3F) << 6 | UInt32(u[i + 3])
                & 0x3F, 4
        )
    }

    /// Scalars with canonical combining class 0 and NFC_Quick_Check = Yes, a conservative subset:
    /// NFC leaves them alone whatever surrounds them, and nothing before them interacts with anything
    /// after them. Everything below the combining marks (U+0300); from there to U+2FFF, the letters
    /// and signs of Greek, Cyrillic, Hebrew, Arabic, the Indic scripts, Thai and the rest that are
    /// neither marks nor the second part of a composition, by ``nfcStableBits``; CJK symbols, kana and
    /// ideographs except the ideographic tone marks (U+302A–U+302F) and the combining kana voicing
    /// marks (U+3099, U+309A); Hangul syllables; variation selectors; full-width forms; and the emoji
    /// blocks.
    @inline(__always)
    static func isNFCStable(_ v: UInt32) -> Bool {
        if v < 0x300 { return true }
        if v < 0x3000 {
            let i = Int(v &- 0x300)
            return nfcStableBits[i >> 6] >> UInt64(i & 63) & 1 != 0
        }
        if v <= 0x9FFF { return !(0x302A...0x302F).contains(v) && v != 0x3099 && v != 0x309A }
        return (0xAC00...0xD7A3).contains(v) || (0xFE00...0xFE0F).contains(v) || (0xFF01...0xFFEF).contains(v)
            || (0x1F300...0x1FAFF).contains(v)
    }
}
