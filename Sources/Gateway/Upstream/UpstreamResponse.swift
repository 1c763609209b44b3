import AsyncHTTPClient
import NIOCore
import Synchronization

/// An upstream's answer, whichever provider produced it; the relay and (later) the meter read it the
/// same way.
struct UpstreamResponse: Sendable {
    var status: Int
    var headers: [(String, String)]
    var contentLength: Int?
    var body: UpstreamBody
    /// Credentials the gateway sent for this request; an error body that echoes one is redacted.
    var secrets: [String] = []
}

enum UpstreamBody: Sendable {
    case upstream(UpstreamBodyHandle)
    case mock(MockReply)

    /// The body's chunks in order, as they arrive; never collects the whole body.
    func makeReader() -> UpstreamBodyReader {
        switch self {
        case .upstream(let handle): UpstreamBodyReader(.upstream(handle))
        case .mock(let reply): UpstreamBodyReader(.mock(MockReply.ChunkCursor(reply: reply)))
        }
    }

}

/// The consumer's hold on an upstream body. When the last holder lets go, read to the end or not, the
/// upstream request stops: a response nobody will read is not paid for.
final class UpstreamBodyHandle: Sendable {
    let body: StreamingResponseDelegate.Body

    init(_ body: StreamingResponseDelegate.Body) { self.body = body }

    deinit { body.abandon() }
}

/// Reads an upstream body chunk by chunk.
///
/// A reference so that the relay can start reading in the request handler and hand the rest of the
/// body to the response writer. It is read by one task at a time, strictly in turn (the handler
/// stops before the writer starts), which is what makes the unchecked `Sendable` sound.
final class UpstreamBodyReader: @unchecked Sendable {
    enum Source {
        case upstream(UpstreamBodyHandle)
        case mock(MockReply.ChunkCursor)
    }

    private var source: Source
    /// For the mock: set once the consumer is gone, and the chunk wait in progress to stop.
    private let mockStop = Mutex<(abandoned: Bool, stopWait: (@Sendable () -> Void)?)>((false, nil))

    init(_ source: Source) { self.source = source }

    /// The next chunk; nil at a clean end; throws where the body broke off, or once abandoned.
    func next() async throws -> ByteBuffer? {
        switch source {
        case .upstream(let handle):
            return try await handle.body.next()
        case .mock(let cursor):
            // The mock's delays run in a task of their own, so that `abandon` can cut them short.
            let step = Task { () -> Result<(ByteBuffer?, MockReply.ChunkCursor), any Error> in
                var cursor = cursor
                do {
                    let chunk = try await cursor.next()
                    return .success((chunk, cursor))
                } catch {
                    return .failure(error)
                }
            }
            let abandoned = mockStop.withLock { s in
                if !s.abandoned { s.stopWait = { step.cancel() } }
                return s.abandoned
            }
            if abandoned { step.cancel() }
            let (chunk, next) = try await withTaskCancellationHandler {
                try await step.value.get()
            } onCancel: {
                step.cancel()
            }
            if mockStop.withLock({ $0.abandoned }) { throw CancellationError() }
            source = .mock(next)
            return chunk
        }
    }

    /// The consumer is gone: stops the upstream request, and makes a pending or later `next` throw.
    func abandon() {
        switch source {
        case .upstream(let handle): handle.body.abandon()
        case .mock: break
        }
        let stopWait = mockStop.withLock { s in
            s.abandoned = true
            defer { s.stopWait = nil }
            return s.stopWait
        }
        stopWait?()
    }

    /// Reads at most `limit` bytes and drops the rest (upstream error bodies, which are small).
    func collect(upTo limit: Int) async -> ByteBuffer {
        var all = ByteBuffer()
        do {
            while var chunk = try await next() {
                if all.readableBytes < limit { all.writeBuffer(&chunk) }
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
