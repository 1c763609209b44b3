import NIOCore
import Synchronization

/// The body of a client request that was still arriving when the request went to its handler: the
/// connection appends what it reads, the handler's task takes it.
///
/// A body that arrived with its head (the usual case) is handed over whole instead. Reading pauses
/// while more than ``pauseAbove`` bytes wait here, so a client cannot make the gateway hold more of a
/// body than its handler has taken.
final class ClientRequestBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    static let pauseAbove = 256 << 10

    private struct State {
        var chunks: [ByteBuffer] = []
        var buffered = 0
        var end: Result<Void, any Error>?
        var waiter: UnsafeContinuation<ByteBuffer?, any Error>?
        /// Reading was paused for this body; the first take below the limit resumes it.
        var paused = false
    }

    private let state = Mutex(State())
    /// Resumes the connection's reads (the connection hops to its event loop itself).
    private let resumeReading: @Sendable () -> Void

    init(resumeReading: @escaping @Sendable () -> Void) {
        self.resumeReading = resumeReading
    }

    /// Appends a chunk; returns whether the connection should stop reading until the body is taken.
    func append(_ chunk: ByteBuffer) -> Bool {
        let (waiter, pause) = state.withLock { s -> (UnsafeContinuation<ByteBuffer?, any Error>?, Bool) in
            guard s.end == nil else { return (nil, false) }
            if let waiter = s.waiter {
                s.waiter = nil
                return (waiter, false)
            }
            s.chunks.append(chunk)
            s.buffered += chunk.readableBytes
            s.paused = s.buffered > Self.pauseAbove
            return (nil, s.paused)
        }
        waiter?.resume(returning: chunk)
        return pause
    }

    /// The body is complete, or broken (`error`): its reader gets what is buffered, then the end or the
    /// error.
    func finish(_ error: (any Error)? = nil) {
        let waiter = state.withLock { s -> UnsafeContinuation<ByteBuffer?, any Error>? in
            guard s.end == nil else { return nil }
            s.end = error.map { .failure($0) } ?? .success(())
            defer { s.waiter = nil }
            return s.waiter
        }
        if let error {
            waiter?.resume(throwing: error)
        } else {
            waiter?.resume(returning: nil)
        }
    }

    private func next() async throws -> ByteBuffer? {
        let (taken, resume) = state.withLock { Self.take(&$0) }
        if resume { resumeReading() }
        if let taken { return try taken.get() }
        return try await withUnsafeThrowingContinuation { continuation in
            // Anything that came between the look above and now is taken at once.
            let (taken, resume) = state.withLock { s in
                let taken = Self.take(&s)
                if taken.0 == nil { s.waiter = continuation }
                return taken
            }
            if resume { resumeReading() }
            if let taken { continuation.resume(with: taken) }
        }
    }

    /// The next chunk or the end, if there is one, and whether reading resumes now that the body is
    /// below the limit.
    private static func take(_ s: inout State) -> (Result<ByteBuffer?, any Error>?, resume: Bool) {
        guard !s.chunks.isEmpty else { return (s.end.map { end in end.map { nil } }, false) }
        let chunk = s.chunks.removeFirst()
        s.buffered -= chunk.readableBytes
        let resume = s.paused && s.buffered <= pauseAbove
        if resume { s.paused = false }
        return (.success(chunk), resume)
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let body: ClientRequestBody
        mutating func next() async throws -> ByteBuffer? { try await body.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}
