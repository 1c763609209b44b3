import Foundation

/// An encoding: the tiktoken-compatible o200k_base, cl100k_base and qwen, or deepseek_v3, a Hugging
/// Face byte-level BPE (``byteLevel``, `TokenEncoding+ByteLevel.swift`).
///
/// The tiktoken encodings treat special-token text as ordinary text (like tiktoken's
/// `encode_ordinary`), which is what user-supplied prompts need. deepseek_v3 counts as Hugging Face's
/// `encode` does, which matches its added tokens (`<think>`, `<｜User｜>`) wherever they appear, as
/// DeepSeek's own tokenizer sees them. Vocabularies ship as package resources and load on first use,
/// once per process, from any thread.
public final class TokenEncoding: Sendable {
    public let name: String
    let pattern: PretokenizerPattern
    let vocabulary: BPEVocabulary
    let merges: MergeTables
    /// Special tokens by id, for decoding.
    let specialTokens: [Int: String]
    /// Qwen's reference tokenizer normalizes to NFC before encoding.
    let normalizesNFC: Bool
    /// deepseek_v3's merge list and added tokens; nil for the tiktoken encodings. Its `vocabulary`
    /// holds its byte strings (rank = id − 3), and `pattern` and `merges`, tiktoken's, go unused.
    let byteLevel: ByteLevelVocabulary?

    init(
        name: String, pattern: PretokenizerPattern, vocabulary: BPEVocabulary, specialTokens: [Int: String], nfc: Bool,
        byteLevel: ByteLevelVocabulary? = nil
    ) {
        self.name = name
        self.pattern = pattern
        self.vocabulary = vocabulary
        self.merges = MergeTables(vocabulary: vocabulary)
        self.specialTokens = specialTokens
        self.normalizesNFC = nfc
        self.byteLevel = byteLevel
    }

    public struct UnknownEncoding: Error, CustomStringConvertible {
        public var name: String
        public var description: String {
            "unknown encoding '\(name)' (known: \(TokenEncoding.names.joined(separator: ", ")))"
        }
    }

    public static let names = ["o200k_base", "cl100k_base", "qwen", "deepseek_v3"]

    /// The encoding with this name, loading it on first use.
    public static func named(_ name: String) throws -> TokenEncoding {
        switch name {
        case "o200k_base": return try o200k.get()
        case "cl100k_base": return try cl100k.get()
        case "qwen": return try qwen.get()
        case "deepseek_v3": return try deepseekV3.get()
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

    private static let deepseekV3 = Result {
        let byteLevel = try ByteLevelVocabulary.loadResource(named: "deepseek_v3")
        return TokenEncoding(
            name: "deepseek_v3", pattern: .o200k, vocabulary: byteLevel.tokens, specialTokens: [:], nfc: false,
            byteLevel: byteLevel)
    }

    // MARK: Encoding

    /// Calls `body` with each token id of `text`, in order: normalize (qwen), pre-tokenize, and encode
    /// each piece (``BytePairEncoder/encode(_:_:emit:)``), or, for text that looks like encoded data,
    /// window by window (``BytePairEncoder/encodeText(encoded:emit:tokenCount:)``). `options` switch
    /// shortcuts off for tests.
    ///
    /// With `tokenCount`, the caller only counts: some tokens may then be passed to it as a number
    /// rather than to `body` one by one, out of order.
    @inline(__always)
    func forEachToken(
        _ text: String, options: EncodingOptions = EncodingOptions(), tokenCount: ((Int) -> Void)? = nil,
        _ body: (UInt32) -> Void
    ) {
        var text = normalizesNFC ? Self.nfc(text) : text
        if let byteLevel {
            return text.withUTF8 { forEachByteLevelToken(byteLevel, $0, options: options, body) }
        }
        text.withUTF8 { utf8 in
            guard !utf8.isEmpty else { return }
            vocabulary.bytes.withUnsafeBufferPointer { bytes in
                func encodeAll(pairMemo: UnsafeMutablePointer<UInt64>?) {
                    let encoder = self.encoder(bytes: bytes, pairMemo: pairMemo, options: options)
                    let splitter = Pretokenizer(
                        text: utf8, pattern: pattern, classes: .shared, fastPaths: options.fastPaths)
                    let base = utf8.baseAddress!
                    // Other text does not pay for the tests that encoded data takes.
                    if options.encodedPaths && BytePairEncoder.looksEncoded(utf8) {
                        encoder.encodeText(encoded: splitter, emit: body, tokenCount: tokenCount)
                    } else {
                        splitter.forEachPiece { start, end in encoder.encode(base + start, end - start, emit: body) }
                    }
                }
                // A short text cannot make the encoder churn for long, and skips the memo's allocation,
                // which would be a large part of a tiny text's (a streamed delta's) time.
                guard utf8.count >= BytePairEncoder.pairMemoFromBytes else { return encodeAll(pairMemo: nil) }
                withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 1 + BytePairEncoder.pairMemoSlots) { memo in
                    memo[0] = 0  // the rest is set up when a piece first needs it
                    encodeAll(pairMemo: memo.baseAddress)
                }
            }
        }
    }

    /// An encoder over this encoding's tables, with `options` resolved into its settings once;
    /// `bytes` is `vocabulary.bytes`.
    @inline(__always)
    func encoder(
        bytes: UnsafeBufferPointer<UInt8>, pairMemo: UnsafeMutablePointer<UInt64>?,
        options: EncodingOptions = EncodingOptions()
    ) -> BytePairEncoder {
        var encoder = BytePairEncoder(
            vocabulary: vocabulary, table: vocabulary.table.buffer, bytes: bytes, merges: merges,
            backtrackFrom: options.backtrackFrom)
        encoder.pairMemo = pairMemo
        encoder.periodicFrom = options.periodicFrom
        encoder.searchesCuts = pattern != .o200k
        encoder.charCutSearch = options.charCuts ? charCutSearch : .none
        return encoder
    }

    /// Which pieces are searched for cuts between three-byte characters
    /// (``BytePairEncoder/encodeAtCharCuts(_:_:emit:)``). cl100k has few CJK words among its tokens, so
    /// even Chinese prose has cuts often enough to search every piece of two characters or more. In
    /// o200k and qwen, whose tokens hold many Chinese words, prose has few, and searching its clauses
    /// cost more than it saved; there only pieces of 64 bytes (22 characters) or more are searched,
    /// which prose seldom makes and runs of rare ideographs do.
    var charCutSearch: BytePairEncoder.CharCutSearch { pattern == .cl100k ? .everyPiece : .longPieces }

    /// `text` as the encoding counts it: NFC for qwen, unchanged otherwise.
    func normalizedForCounting(_ text: String) -> String { normalizesNFC ? Self.nfc(text) : text }

    /// NFC as Qwen's tokenizer applies it (`Normalization/NFC.swift`).
    static func nfc(_ text: String) -> String { NFC.normalize(text) }

    /// What a streaming counter may settle of `text` (already ``normalizedForCounting(_:)``): the
    /// pieces before the latest pre-tokenization piece with at least `pieces` pieces after it, as a
    /// byte length and their number of tokens; (0, 0) when there is no such piece. Appending text can
    /// change only the last pieces, so the pieces before it stay as they are.
    ///
    /// The tokens are those of the pieces as `text` splits them, not of the prefix on its own: at the
    /// end of a text, two spaces are one piece (`\s+(?!\S)`), but before a digit they are two.
    ///
    /// For qwen the piece must also begin with an NFC-stable scalar (``NFC/isStable(_:)``), so that
    /// nothing appended later can compose with or reorder across it: NFC of the whole is then the
    /// settled prefix followed by NFC of the rest. Without that, a mark arriving after the cut (e,
    /// then U+0301) would make one letter of what was counted as two pieces.
    func settledPrefix(_ text: String, keepingPieces pieces: Int) -> (length: Int, tokens: Int) {
        if let byteLevel { return byteLevelSettledPrefix(byteLevel, text, keepingPieces: pieces) }
        var text = text
        return text.withUTF8 { utf8 -> (length: Int, tokens: Int) in
            guard !utf8.isEmpty else { return (0, 0) }
            var bounds: [(start: Int, end: Int)] = []
            Pretokenizer(text: utf8, pattern: pattern, classes: .shared).forEachPiece { bounds.append(($0, $1)) }
            guard bounds.count > pieces,
                let cut = stride(from: bounds.count - pieces, through: 1, by: -1).first(where: {
                    !normalizesNFC || NFC.isStable(utf8.scalar(at: bounds[$0].start).value)
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
        if let byteLevel {
            for t in tokens { out.append(contentsOf: byteLevel.bytes(of: t) ?? []) }
            return out
        }
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
}
