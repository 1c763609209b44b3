import Gateway
import HTTPTypes
import Metering
import Synchronization

/// The built-in mock provider as an upstream transport: answers in-process, with the same faults the
/// emulator serves over HTTP (``MockDirectives``).
public struct MockTransport: UpstreamTransport {
    /// Counts tokens of the reply for the reported usage.
    let countTokens: @Sendable (String) -> Int

    /// Attempts seen so far of requests that asked to fail some first (`x-mock-fail-times`).
    static let attempts = Mutex<[String: Int]>([:])

    public init(countTokens: @escaping @Sendable (String) -> Int = MockProvider.roughCount) {
        self.countTokens = countTokens
    }

    /// Counts with o200k_base, so that the mock reports what a real provider would.
    public static let o200kCount: @Sendable (String) -> Int = { text in
        (try? TokenEncoding.named("o200k_base"))?.count(text) ?? MockProvider.roughCount(text)
    }

    public func send(_ request: UpstreamRequest, cancellation: UpstreamCancellation) async throws(UpstreamFailure)
        -> UpstreamResponse
    {
        let mock = MockProvider(settings: request.provider.mock, countTokens: countTokens)
        var directives = MockDirectives(headers: request.clientHeaders)
        var extra: [(String, String)] = []
        if let key = directives.rateLimitedKey, key == request.keyID {
            directives.status = 429
            extra = [("retry-after", "30"), ("x-ratelimit-reset-requests", "30s")]
        } else if let times = directives.failTimes, times > 0 {
            // Attempts of one request share its id: the first `times` of them fail.
            let attempt = Self.attempts.withLock { seen -> Int in
                // Requests that stopped before their last failure would stay: keep the map bounded.
                if seen.count > 10_000 { seen.removeAll() }
                let n = (seen[request.requestID] ?? 0) + 1
                seen[request.requestID] = n > times ? nil : n
                return n
            }
            if attempt <= times { directives.status = directives.failStatus ?? 503 }
        }
        let reply = mock.reply(to: request.parsed, directives: directives)
        if reply.stallBeforeHeadersMilliseconds > 0 {
            // In a task of its own, so that a client who leaves cuts the stall short.
            let stall = Task { try? await Task.sleep(for: .milliseconds(reply.stallBeforeHeadersMilliseconds)) }
            cancellation.onCancel { stall.cancel() }
            await stall.value
        }
        var headers: [(String, String)] = [("content-type", reply.contentType)] + extra
        if reply.isStream { headers.append(("cache-control", "no-cache")) }
        return UpstreamResponse(
            status: reply.status, headers: headers, contentLength: reply.isStream ? nil : reply.contentLength,
            body: MockBodySource(reply))
    }
}
