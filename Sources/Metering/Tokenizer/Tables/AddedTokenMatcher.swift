/// The added tokens of a Hugging Face tokenizer (DeepSeek's `<｜User｜>`, `<think>` and the like),
/// found in the text before pre-tokenization, as `AddedVocabulary` does: `encode` matches them
/// whatever `add_special_tokens` says, so a prompt that contains `<think>` is one token there.
///
/// Two passes, as there: first the tokens marked not `normalized`, then, in the text between
/// those, the others. Each pass takes the leftmost match, the longest where several start at the
/// same byte, and goes on after it. Every token begins with one of a few bytes (`<`, or the first
/// byte of `｜`), so most of the text is skipped a byte at a time without a lookup.
struct AddedTokenMatcher: Sendable {
    struct Trie: Sendable {
        /// `node << 8 | byte` → child node; the root is node 0.
        var children: [UInt32: UInt32] = [:]
        /// Per node: the id of the token that ends there, or -1.
        var terminal: [Int32] = [-1]
        /// The bytes some token begins with.
        var starts = [Bool](repeating: false, count: 256)

        mutating func insert(_ content: [UInt8], id: UInt32) {
            guard let first = content.first else { return }
            starts[Int(first)] = true
            var node: UInt32 = 0
            for byte in content {
                let key = node << 8 | UInt32(byte)
                if let child = children[key] {
                    node = child
                } else {
                    let child = UInt32(terminal.count)
                    terminal.append(-1)
                    children[key] = child
                    node = child
                }
            }
            terminal[Int(node)] = Int32(truncatingIfNeeded: id)
        }

        /// The longest token at `text[i...]` before `end`, as (id, its end), or nil.
        @inline(__always)
        func longest(_ text: UnsafeBufferPointer<UInt8>, at i: Int, end: Int) -> (id: UInt32, end: Int)? {
            var node: UInt32 = 0
            var found: (id: UInt32, end: Int)? = nil
            var j = i
            while j < end, let child = children[node << 8 | UInt32(text[j])] {
                node = child
                j += 1
                let id = terminal[Int(node)]
                if id >= 0 { found = (UInt32(id), j) }
            }
            return found
        }
    }

    /// The first pass's tokens (not normalized) and the second's.
    let raw: Trie
    let normalized: Trie
    let contents: [Int: [UInt8]]
    /// The longest token, in bytes: matching at a byte never looks further than this past it.
    let longestLength: Int

    init(_ tokens: [(id: UInt32, content: [UInt8], normalized: Bool)]) {
        var raw = Trie()
        var normalized = Trie()
        var contents: [Int: [UInt8]] = [:]
        for t in tokens {
            if t.normalized {
                normalized.insert(t.content, id: t.id)
            } else {
                raw.insert(t.content, id: t.id)
            }
            contents[Int(t.id)] = t.content
        }
        self.raw = raw
        self.normalized = normalized
        self.contents = contents
        self.longestLength = tokens.map(\.content.count).max() ?? 0
    }

    func content(of id: Int) -> [UInt8]? { contents[id] }

    /// Calls `body` for each part of `text[start..<end]` in order: ordinary text as
    /// `(start, end, nil)`, an added token as `(start, end, id)`.
    @inline(__always)
    func split(
        _ text: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int,
        _ body: (_ start: Int, _ end: Int, _ token: UInt32?) -> Void
    ) {
        pass(raw, text, start, end) { a, b, token in
            if token != nil {
                body(a, b, token)
            } else {
                pass(normalized, text, a, b, body)
            }
        }
    }

    @inline(__always)
    private func pass(
        _ trie: Trie, _ text: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int,
        _ body: (_ start: Int, _ end: Int, _ token: UInt32?) -> Void
    ) {
        var plain = start
        var i = start
        while i < end {
            guard trie.starts[Int(text[i])], let match = trie.longest(text, at: i, end: end) else {
                i += 1
                continue
            }
            if plain < i { body(plain, i, nil) }
            body(i, match.end, match.id)
            i = match.end
            plain = i
        }
        if plain < end { body(plain, end, nil) }
    }
}
