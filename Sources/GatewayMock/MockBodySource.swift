import Gateway
import NIOCore
import Synchronization

/// The mock reply's body as an upstream body: chunks with their delays and faults. Each wait runs in a
/// task of its own, so that a client who leaves cuts it short.
final class MockBodySource: UpstreamBodySource, @unchecked Sendable {
    // Read by one task at a time (see `UpstreamBodySource`); only `stop` is shared, behind its lock.
    private var cursor: MockReply.ChunkCursor
    private let stop = Mutex<(abandoned: Bool, stopWait: (@Sendable () -> Void)?)>((false, nil))

    init(_ reply: MockReply) { self.cursor = MockReply.ChunkCursor(reply: reply) }

    func next() async throws -> ByteBuffer? {
        let cursor = cursor
        let step = Task { () -> Result<(ByteBuffer?, MockReply.ChunkCursor), any Error> in
            var cursor = cursor
            do {
                let chunk = try await cursor.next()
                return .success((chunk, cursor))
            } catch {
                return .failure(error)
            }
        }
        let abandoned = stop.withLock { s in
            if !s.abandoned { s.stopWait = { step.cancel() } }
            return s.abandoned
        }
        if abandoned { step.cancel() }
        let (chunk, next) = try await withTaskCancellationHandler {
            try await step.value.get()
        } onCancel: {
            step.cancel()
        }
        if stop.withLock({ $0.abandoned }) { throw CancellationError() }
        self.cursor = next
        return chunk
    }

    func abandon() {
        let stopWait = stop.withLock { s in
            s.abandoned = true
            defer { s.stopWait = nil }
            return s.stopWait
        }
        stopWait?()
    }
}
