import AsyncHTTPClient
import NIOCore

/// An HTTP upstream's body as the relay reads it. When the last holder lets go, read to the end or not,
/// the upstream request stops: a response nobody will read is not paid for.
final class UpstreamBodyHandle: UpstreamBodySource {
    let body: StreamingResponseDelegate.Body

    init(_ body: StreamingResponseDelegate.Body) { self.body = body }

    func next() async throws -> ByteBuffer? { try await body.next() }

    func abandon() { body.abandon() }

    func push(to sink: any UpstreamBodySink) -> Bool { body.push(to: sink) }

    deinit { body.abandon() }
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
