import Foundation

/// Requests and tokens admitted in the last minute, for one tenant or key (a sliding window).
struct RateWindow: Sendable {
    static let length: TimeInterval = 60
    /// Each entry is one admission, or (``load(start:requests:tokens:)``) a shared store's fixed window.
    private var entries: [(at: Date, requests: Int, tokens: Int)] = []
    private var head = 0
    private(set) var requests = 0
    private(set) var tokens = 0

    mutating func prune(now: Date) {
        while head < entries.count, now.timeIntervalSince(entries[head].at) >= Self.length {
            requests -= entries[head].requests
            tokens.saturatingSubtract(entries[head].tokens)
            head += 1
        }
        if head > 1024 && head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    mutating func add(tokens: Int, now: Date) {
        entries.append((now, 1, tokens))
        requests += 1
        self.tokens.saturatingAdd(tokens)
    }

    /// A window counted elsewhere (a shared store's fixed minute): `requests` and `tokens` admitted since
    /// `start`, which all count until `start` plus the window's length.
    mutating func load(start: Date, requests: Int, tokens: Int) {
        entries.append((start, requests, tokens))
        self.requests.saturatingAdd(requests)
        self.tokens.saturatingAdd(tokens)
    }

    /// Seconds until one more request of `needTokens` would fit under `limits` (0 if it fits now; 60 if
    /// it never fits, such as a request larger than the whole token limit).
    func retryAfter(now: Date, limits: RateLimits, needTokens: Int) -> Int {
        var requests = self.requests
        var tokens = self.tokens
        func fits() -> Bool {
            (limits.requestsPerMinute.map { requests + 1 <= $0 } ?? true)
                && (limits.tokensPerMinute.map { tokens.saturatingAdding(needTokens) <= $0 } ?? true)
        }
        if fits() { return 0 }
        for i in head..<entries.count {
            requests -= entries[i].requests
            tokens.saturatingSubtract(entries[i].tokens)
            if fits() { return max(1, Int((Self.length - now.timeIntervalSince(entries[i].at)).rounded(.up))) }
        }
        return Int(Self.length)
    }
}
