/// Counts the tokens of a text that arrives in pieces (streamed completion deltas), equal at every
/// moment to counting everything received so far in one go.
///
/// Deltas may split a UTF-8 sequence or a word anywhere. Only the unsettled tail (the last few
/// pre-tokenization pieces, which later text can still change) is kept and re-counted; everything
/// before it is counted once and dropped, so memory stays small however long the stream.
public struct StreamingTokenCounter: Sendable {
    public let encoding: TokenEncoding
    /// Tail pieces kept unsettled: appended text can change the last piece (a word continues, a
    /// contraction attaches, a whitespace run grows), so more than one is kept as a margin.
    static let keptPieces = 3
    private let settleThreshold: Int
    private var pending: [UInt8] = []
    private var settled = 0

    /// `settleThreshold`: pending bytes above which the settled prefix is counted and dropped.
    public init(encoding: TokenEncoding, settleThreshold: Int = 2048) {
        self.encoding = encoding
        self.settleThreshold = max(1, settleThreshold)
    }

    public mutating func append(_ text: String) { append(bytes: Array(text.utf8)) }

    public mutating func append(bytes: some Sequence<UInt8>) {
        pending.append(contentsOf: bytes)
        if pending.count >= settleThreshold { settle() }
    }

    /// Tokens received so far. An incomplete UTF-8 sequence at the end waits for its next bytes.
    public var count: Int {
        settled + encoding.count(String(decoding: pending[..<completeLength()], as: UTF8.self))
    }

    /// The count at the end of the stream: a trailing incomplete sequence counts as U+FFFD.
    public var finalCount: Int {
        settled + encoding.count(String(decoding: pending, as: UTF8.self))
    }

    /// Length of the longest prefix of `pending` that does not end inside a UTF-8 sequence.
    private func completeLength() -> Int {
        var i = pending.count
        var back = 0
        while i > 0 && back < 4 {
            let b = pending[i - 1]
            if b & 0xC0 != 0x80 {
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return back + 1 >= need ? pending.count : i - 1
            }
            i -= 1
            back += 1
        }
        return pending.count
    }

    /// Counts and drops the settled prefix (``TokenEncoding/settledPrefix(_:keepingPieces:)``). For
    /// qwen, `pending` keeps the rest normalized: NFC of that rest and whatever follows is NFC of the
    /// raw text and whatever follows.
    private mutating func settle() {
        let complete = completeLength()
        let text = encoding.normalizedForCounting(String(decoding: pending[..<complete], as: UTF8.self))
        let prefix = encoding.settledPrefix(text, keepingPieces: Self.keptPieces)
        guard prefix.length > 0 else { return }
        settled += prefix.tokens
        pending = Array(text.utf8.dropFirst(prefix.length)) + pending[complete...]
    }
}
