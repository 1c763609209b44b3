import AsyncHTTPClient
import NIOCore

/// An upstream's answer, whichever provider produced it; the relay and (later) the meter read it the
/// same way.
struct UpstreamResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var contentLength: Int?
    var body: UpstreamBody
}

enum UpstreamBody: Sendable {
    case upstream(StreamingResponseDelegate.Chunks)
    case mock(MockReply)

    /// Passes each body chunk to `consume` as it arrives; never collects the whole body.
    func forEachChunk(_ consume: (ByteBuffer) async throws -> Void) async throws {
        switch self {
        case .upstream(let body):
            for try await chunk in body { try await consume(chunk) }
        case .mock(let reply):
            try await reply.writeBody(consume)
        }
    }

    /// Reads at most `limit` bytes (used for upstream error bodies, which are small).
    func collect(upTo limit: Int) async -> ByteBuffer {
        var all = ByteBuffer()
        do {
            try await forEachChunk { chunk in
                var chunk = chunk
                if all.readableBytes < limit {
                    all.writeBuffer(&chunk)
                }
            }
        } catch {}
        return all
    }
}

/// Why the gateway could not get an answer from the upstream.
public enum UpstreamFailure: Error, Sendable, Equatable {
    /// Refused, reset, DNS or TLS failure: 502.
    case unreachable(provider: String, detail: String)
    /// No response headers within the provider's timeouts: 504.
    case timedOut(provider: String)
    /// The provider's key is not in the environment: 503.
    case notConfigured(provider: String, detail: String)
}
