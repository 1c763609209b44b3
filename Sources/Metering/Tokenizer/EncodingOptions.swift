/// Switches that turn the encoder's shortcuts off, so that tests can compare each shortcut with the
/// path it stands in for. Everything else uses the defaults (every shortcut on). They are resolved
/// once per text, before the first piece, into the pre-tokenizer (``Pretokenizer/fastPaths``) and the
/// encoder (``TokenEncoding/encoder(bytes:pairMemo:options:)``).
struct EncodingOptions {
    /// Pieces at least this long that are not a token are backtracked; `.max` merges every piece with
    /// tiktoken's scan.
    var backtrackFrom = BytePairEncoder.defaultBacktrackFrom
    /// Pieces at least this long that repeat a short unit take the periodic shortcut; `.max`
    /// backtracks through them too.
    var periodicFrom = BytePairEncoder.defaultPeriodicFrom
    /// `false`: pre-tokenize without the ASCII, CJK and whitespace shortcuts.
    var fastPaths = true
    /// `false`: encode text that looks like encoded data as any other text.
    var encodedPaths = true
    /// `false`: merge CJK pieces without cutting them between characters.
    var charCuts = true
    /// deepseek_v3: pieces at least this long merge by ``PairMerger/mergeLong(_:_:emit:)``; 2 sends
    /// every piece there, `.max` none.
    var longMergeFrom = PairMerger.defaultLongFrom
}
