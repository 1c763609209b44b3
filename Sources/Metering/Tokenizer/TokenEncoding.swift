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
    /// too, `fastPaths: false` pre-tokenizes without the ASCII and CJK shortcuts,
    /// `encodedPaths: false` encodes text that looks like encoded data as any other text, and
    /// `charCuts: false` merges CJK pieces without cutting them between characters: the references
    /// the tests compare the fast paths with.
    ///
    /// With `tokenCount`, the caller only counts: some tokens may then be passed to it as a number
    /// rather than to `body` one by one, out of order (the parts of one and two bytes of text that
    /// looks like encoded data: ``BytePairEncoder/encodeText(encoded:emit:tokenCount:)``).
    @inline(__always)
    func forEachToken(
        _ text: String, backtrackFrom: Int = BytePairEncoder.defaultBacktrackFrom,
        periodicFrom: Int = BytePairEncoder.defaultPeriodicFrom, fastPaths: Bool = true, encodedPaths: Bool = true,
        charCuts: Bool = true, tokenCount: ((Int) -> Void)? = nil, _ body: (UInt32) -> Void
    ) {
        var text = normalizesNFC ? Self.nfc(text) : text
        text.withUTF8 { utf8 in
            guard !utf8.isEmpty else { return }
            vocabulary.bytes.withUnsafeBufferPointer { bytes in
                func encodeAll(pairMemo: UnsafeMutablePointer<UInt64>?) {
                    let encoder = self.encoder(
                        bytes: bytes, pairMemo: pairMemo, backtrackFrom: backtrackFrom, periodicFrom: periodicFrom,
                        charCuts: charCuts)
                    let splitter = Pretokenizer(
                        text: utf8, pattern: pattern, classes: .shared, fastPaths: fastPaths)
                    let base = utf8.baseAddress!
                    // Text that looks like encoded data goes window by window, searched for cuts
                    // (cl100k, qwen) or its lookups screened (o200k), its short parts counted in bulk
                    // when counting; other text does not pay for the tests
                    // (`BytePairEncoder.encodeText(encoded:emit:tokenCount:)`).
                    if encodedPaths && BytePairEncoder.looksEncoded(utf8) {
                        encoder.encodeText(encoded: splitter, emit: body, tokenCount: tokenCount)
                    } else {
                        splitter.forEachPiece { start, end in encoder.encode(base + start, end - start, emit: body) }
                    }
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

    /// An encoder over this encoding's tables; `bytes` is `vocabulary.bytes`.
    @inline(__always)
    func encoder(
        bytes: UnsafeBufferPointer<UInt8>, pairMemo: UnsafeMutablePointer<UInt64>?,
        backtrackFrom: Int = BytePairEncoder.defaultBacktrackFrom,
        periodicFrom: Int = BytePairEncoder.defaultPeriodicFrom, charCuts: Bool = true
    ) -> BytePairEncoder {
        var encoder = BytePairEncoder(
            vocabulary: vocabulary, table: vocabulary.table.buffer, bytes: bytes, merges: merges,
            backtrackFrom: backtrackFrom)
        encoder.pairMemo = pairMemo
        encoder.periodicFrom = periodicFrom
        encoder.searchesCuts = pattern != .o200k
        encoder.charCutSearch = charCuts ? charCutSearch : .none
        return encoder
    }

    /// Which pieces are searched for cuts between three-byte characters
    /// (``BytePairEncoder/encodeAtCharCuts(_:_:emit:)``). cl100k has few CJK words among its tokens,
    /// so a boundary between two such characters is a cut even in Chinese prose about 40% of the
    /// time (98% in a run of rare ideographs), and every piece of two characters or more is searched.
    /// In o200k and qwen, whose tokens hold many Chinese words, prose has cuts at 14% and 6% of those
    /// boundaries, and searching its clauses cost o200k 5% on Chinese prose; a run of rare ideographs
    /// still has them at 79% and 49%. So there only pieces of 64 bytes (22 characters) or more are
    /// searched, which prose seldom makes.
    var charCutSearch: BytePairEncoder.CharCutSearch { pattern == .cl100k ? .everyPiece : .longPieces }

    /// `text` as the encoding counts it: NFC for qwen, unchanged otherwise.
    func normalizedForCounting(_ text: String) -> String { normalizesNFC ? Self.nfc(text) : text }

    /// What a streaming counter may settle of `text` (already ``normalizedForCounting(_:)``): the
    /// pieces before the latest pre-tokenization piece with at least `pieces` pieces after it, as a
    /// byte length and their number of tokens; (0, 0) when there is no such piece. Appending text can
    /// change only the last pieces, so the pieces before it stay as they are.
    ///
    /// The tokens are those of the pieces as `text` splits them, not of the prefix on its own: at the
    /// end of a text, two spaces are one piece (`\s+(?!\S)`), but before a digit they are two.
    ///
    /// For qwen the piece must also begin with an NFC-stable scalar (``isNFCStable(_:)``), so that
    /// nothing appended later can compose with or reorder across it: NFC of the whole is then the
    /// settled prefix followed by NFC of the rest. Without that, a mark arriving after the cut (e,
    /// then U+0301) would make one letter of what was counted as two pieces.
    func settledPrefix(_ text: String, keepingPieces pieces: Int) -> (length: Int, tokens: Int) {
        var text = text
        return text.withUTF8 { utf8 -> (length: Int, tokens: Int) in
            guard !utf8.isEmpty else { return (0, 0) }
            var bounds: [(start: Int, end: Int)] = []
            Pretokenizer(text: utf8, pattern: pattern, classes: .shared).forEachPiece { bounds.append(($0, $1)) }
            guard bounds.count > pieces,
                let cut = stride(from: bounds.count - pieces, through: 1, by: -1).first(where: {
                    !normalizesNFC || Self.isNFCStable(Self.scalar(utf8, at: bounds[$0].start).0)
                })
            else { return (0, 0) }
            var tokens = 0
            vocabulary.bytes.withUnsafeBufferPointer { bytes in
                // No pair memo: it pays only on long churning pieces, and would cost every settle.
                let encoder = self.encoder(bytes: bytes, pairMemo: nil)
                for piece in bounds[..<cut] {
                    encoder.encode(utf8.baseAddress! + piece.start, piece.end - piece.start) { _ in tokens += 1 }
                }
            }
            return (bounds[cut].start, tokens)
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
        // Through a pointer: two closures capturing `n` itself would check each access at run time.
        withUnsafeMutablePointer(to: &n) { n in
            forEachToken(text, tokenCount: { n.pointee += $0 }) { _ in n.pointee += 1 }
        }
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
                if Self.passesNFCQuickCheck(UnsafeBufferPointer(rebasing: u[start..<end])) {
                    // Already NFC: leave it where it is.
                    lastStable = -1
                    i = end
                    continue
                }
                if out.isEmpty { out.reserveCapacity(u.count + 16) }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: u[copied..<start]))
                out.append(contentsOf: Self.nfcSegment(UnsafeBufferPointer(rebasing: u[start..<end])).utf8)
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

    /// Whether NFC leaves the segment as it is, by the Unicode standard's quick check (UAX #15): every
    /// scalar's NFC_Quick_Check is Yes and the combining classes of each run of marks never decrease.
    /// Conservative: a scalar outside U+0300–U+2FFF passes only if it is NFC-stable, and one that may
    /// compose with the scalar before it counts as failing (``nfcQuickCheck``). Text dense with marks
    /// that are already in order and compose with nothing (Devanagari viramas and vowel signs) then
    /// skips Foundation: a megabyte of Hindi counted in qwen at 38 MB/s without this.
    static func passesNFCQuickCheck(_ u: UnsafeBufferPointer<UInt8>) -> Bool {
        let table = nfcQuickCheck
        var i = 0
        var last: UInt8 = 0
        while i < u.count {
            if u[i] < 0x80 {
                last = 0
                i += 1
                continue
            }
            let (v, length) = Self.scalar(u, at: i)
            i += length
            if v < 0x300 {
                last = 0
            } else if v < 0x3000 {
                let ccc = table[Int(v - 0x300)]
                if ccc == 0xFF || (ccc != 0 && ccc < last) { return false }
                last = ccc
            } else if isNFCStable(v) {
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
    /// ``nfcSegment(_:)``). Derived once from this Swift's Unicode data, when qwen first normalizes.
    static let nfcQuickCheck: [UInt8] = {
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

    /// NFC of one segment of ``nfc(_:)``, as the Unicode standard and Python's `unicodedata` (which
    /// Qwen's tokenizer uses) give it.
    ///
    /// Swift's own normalization (6.3, behind Foundation's `precomposedStringWithCanonicalMapping`)
    /// is fast but departs from the standard. A differential fuzz of the tokenizer against Python, and
    /// then exhaustive checks against Python, found:
    /// - a scalar above U+FFFF composes as if it were the scalar of its low 16 bits: U+20041 (a CJK
    ///   ideograph) U+0301 becomes U+00C1, and U+11F41 U+0300 becomes U+1F43;
    /// - Hangul jamo compose with ranges off by one (U+1100 U+1161 U+11A7 becomes U+AC00, losing
    ///   U+11A7; U+1113 U+1161 becomes U+D7A4, which is no syllable), and U+AC00 U+11A8 is left
    ///   alone instead of becoming U+AC01;
    /// - U+0CCA U+0CD5 is left alone instead of becoming U+0CCB;
    /// - the marks that U+0F73, U+0F75 and U+0F81 decompose into (classes 129–132) are not sorted
    ///   before a mark of a higher class in front of them (U+0301 U+0F73 is U+0F71 U+0F72 U+0301).
    /// So a segment that holds any of those scalars (``needsICU(_:)``) is normalized by ICU instead,
    /// through Foundation's `applyingTransform` ("Any-NFC"), which is right on all of them and takes
    /// about twice as long. Checked against Python for every pair of marks, decomposable characters and
    /// decomposition parts (17.7 million), every starter followed by every second part of a
    /// composition (6.7 million; a quarter of the starters above U+FFFF), and 22 million more
    /// sequences built around decomposable characters and recent marks.
    static func nfcSegment(_ utf8: UnsafeBufferPointer<UInt8>) -> String {
        let segment = String(decoding: utf8, as: UTF8.self)
        if Self.needsICU(utf8), let normalized = segment.applyingTransform(Self.icuNFC, reverse: false) {
            return normalized
        }
        return segment.precomposedStringWithCanonicalMapping
    }

    static let icuNFC = StringTransform("Any-NFC")

    /// Whether valid UTF-8 holds a scalar whose segment Swift's normalization may get wrong
    /// (``nfcSegment(_:)``): anything above U+FFFF (four bytes), Hangul jamo (U+1100–U+11FF,
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
