import Synchronization

/// Remembers the token counts of long texts so an agent's history, resent in full every turn, is
/// tokenized once: turn N pays only for its new messages.
///
/// Keyed by the text itself (no hash collisions can miscount), bounded by total cached bytes with
/// first-in-first-out eviction. Shared by all requests; safe from any thread.
public final class TokenCountCache: Sendable {
    struct Key: Hashable {
        var encoding: String
        var text: String
    }

    struct State {
        var counts: [Key: Int] = [:]
        var order: [Key] = []
        var head = 0
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    /// Texts shorter than this are cheaper to count than to look up.
    public static let minimumBytes = 64
    private let capacityBytes: Int
    private let state = Mutex(State())

    public init(capacityBytes: Int = 16 << 20) {
        self.capacityBytes = capacityBytes
    }

    public var statistics: (hits: Int, misses: Int, entries: Int) {
        state.withLock { ($0.hits, $0.misses, $0.counts.count) }
    }

    public func count(_ text: String, encoding: TokenEncoding) -> Int {
        let size = text.utf8.count
        guard size >= Self.minimumBytes, size <= capacityBytes / 4 else { return encoding.count(text) }
        let key = Key(encoding: encoding.name, text: text)
        if let hit = state.withLock({ s -> Int? in
            let v = s.counts[key]
            if v != nil { s.hits += 1 }
            return v
        }) {
            return hit
        }
        let n = encoding.count(text)
        state.withLock { s in
            s.misses += 1
            guard s.counts[key] == nil else { return }
            s.counts[key] = n
            s.order.append(key)
            s.bytes += size
            while s.bytes > capacityBytes && s.head < s.order.count {
                let old = s.order[s.head]
                s.head += 1
                if s.counts.removeValue(forKey: old) != nil { s.bytes -= old.text.utf8.count }
            }
            if s.head > 1024 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
        return n
    }
}
