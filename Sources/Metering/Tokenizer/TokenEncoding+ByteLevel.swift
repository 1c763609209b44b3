/// deepseek_v3, as Hugging Face `tokenizers` encodes with DeepSeek's `tokenizer.json`: added tokens
/// first (``AddedTokenMatcher``), then, between them, the pre-tokenizer (``DeepSeekPretokenizer``)
/// and byte-level BPE on each piece (``PairMerger``). There is no normalizer.
extension TokenEncoding {
    @inline(__always)
    func forEachByteLevelToken(
        _ byteLevel: ByteLevelVocabulary, _ utf8: UnsafeBufferPointer<UInt8>, options: EncodingOptions,
        _ body: (UInt32) -> Void
    ) {
        guard let base = utf8.baseAddress, !utf8.isEmpty else { return }
        byteLevel.tokens.bytes.withUnsafeBufferPointer { tokenBytes in
            var merger = PairMerger(vocabulary: byteLevel, tokenBytes: tokenBytes)
            merger.longFrom = options.longMergeFrom
            let splitter = DeepSeekPretokenizer(text: utf8, classes: .unicode16)
            byteLevel.added.split(utf8, from: 0, to: utf8.count) { start, end, token in
                if let token {
                    body(token)
                } else {
                    splitter.forEachPiece(from: start, to: end) { a, b in merger.encode(base + a, b - a, emit: body) }
                }
            }
        }
    }

    /// ``settledPrefix(_:keepingPieces:)`` for deepseek_v3. Appended text can complete an added token
    /// that begins up to its longest length before the end, and a token there ends the text before
    /// it (a run of spaces before `<think>` is one piece, not two). So only pieces that end before
    /// that zone count towards the kept margin; the scans that made the pieces before the cut read
    /// no further than the piece after it and one more character, all before the zone.
    func byteLevelSettledPrefix(_ byteLevel: ByteLevelVocabulary, _ text: String, keepingPieces pieces: Int)
        -> (length: Int, tokens: Int)
    {
        var text = text
        return text.withUTF8 { utf8 -> (length: Int, tokens: Int) in
            guard let base = utf8.baseAddress, !utf8.isEmpty else { return (0, 0) }
            var bounds: [(start: Int, end: Int, token: UInt32?)] = []
            let splitter = DeepSeekPretokenizer(text: utf8, classes: .unicode16)
            byteLevel.added.split(utf8, from: 0, to: utf8.count) { start, end, token in
                if token != nil {
                    bounds.append((start, end, token))
                } else {
                    splitter.forEachPiece(from: start, to: end) { bounds.append(($0, $1, nil)) }
                }
            }
            let zone = utf8.count - byteLevel.added.longestLength
            let settledPieces = bounds.prefix { $0.end <= zone }.count
            let cut = settledPieces - pieces
            guard cut >= 1 else { return (0, 0) }
            var tokens = 0
            byteLevel.tokens.bytes.withUnsafeBufferPointer { tokenBytes in
                let merger = PairMerger(vocabulary: byteLevel, tokenBytes: tokenBytes)
                for piece in bounds[..<cut] {
                    if piece.token != nil {
                        tokens += 1
                    } else {
                        merger.encode(base + piece.start, piece.end - piece.start) { _ in tokens += 1 }
                    }
                }
            }
            return (bounds[cut].start, tokens)
        }
    }
}
