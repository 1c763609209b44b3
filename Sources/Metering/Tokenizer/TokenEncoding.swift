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
    /// Special tokens by id, for decoding.
    let specialTokens: [Int: String]
    /// Qwen's reference tokenizer normalizes to NFC before encoding.
    let normalizesNFC: Bool

    init(name: String, pattern: PretokenizerPattern, vocabulary: BPEVocabulary, specialTokens: [Int: String], nfc: Bool)
    {
        self.name = name
        self.pattern = pattern
        self.vocabulary = vocabulary
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

    /// Calls `body` with each token id of `text`, in order.
    func forEachToken(_ text: String, _ body: (UInt32) -> Void) {
        var text = normalizesNFC ? Self.nfc(text) : text
        text.withUTF8 { utf8 in
            guard !utf8.isEmpty else { return }
            vocabulary.table.withUnsafeBufferPointer { table in
                vocabulary.bytes.withUnsafeBufferPointer { bytes in
                    let encoder = BytePairEncoder(vocabulary: vocabulary, table: table, bytes: bytes)
                    let splitter = Pretokenizer(text: utf8, pattern: pattern, classes: .shared)
                    let base = utf8.baseAddress!
                    var i = 0
                    while i < utf8.count {
                        let end = splitter.pieceEnd(from: i)
                        encoder.encode(base + i, end - i, emit: body)
                        i = end
                    }
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
            var i = 0
            while i < utf8.count {
                starts[seen % pieces] = i
                seen += 1
                i = splitter.pieceEnd(from: i)
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

    static func nfc(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) || text.unicodeScalars.allSatisfy(isNFCStable) { return text }
        return text.precomposedStringWithCanonicalMapping
    }

    /// Scalars that NFC leaves alone whatever surrounds them: below the combining marks (U+0300),
    /// CJK symbols, kana and ideographs (except the two combining kana voicing marks), Hangul
    /// syllables, and the full-width forms. A text made only of these is already NFC, so the costly
    /// normalization is skipped for most English and Chinese text.
    @inline(__always)
    static func isNFCStable(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return v < 0x300 || (0x3000...0x9FFF).contains(v) && v != 0x3099 && v != 0x309A
            || (0xAC00...0xD7A3).contains(v) || (0xFF01...0xFFEF).contains(v)
    }
}
