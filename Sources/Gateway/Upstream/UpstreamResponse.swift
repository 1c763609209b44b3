import AsyncHTTPClient
import NIOCore

/// An upstream's answer, whichever provider produced it; the relay and (later) the meter read it the
/// same way.
public struct UpstreamResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var contentLength: Int?
    public var body: UpstreamBody
}

public enum UpstreamBody: Sendable {
    case http(HTTPClientResponse.Body)
    case mock(MockReply)

    /// Passes each body chunk to `consume` as it arrives; never collects the whole body.
    public func forEachChunk(_ consume: (ByteBuffer) async throws -> Void) async throws {
        switch self {
        case .http(let body):
            for try await chunk in body { try await consume(chunk) }
        case .mock(let reply):
            try await reply.writeBody(consume)
        }
    }

    /// Reads at most `limit` bytes (used for upstream error bodies, which are small).
    public func collect(upTo limit: Int) async -> ByteBuffer {
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
