import NIOCore
import Synchronization

/// An upstream response body between the connection that reads it and the relay that sends it on.
///
/// Every byte received is handed on before a break is reported: a proxy that bills what it delivered
/// must give the client (and the meter) everything that arrived. The upstream is read only as fast as
/// the client takes it, and the upstream exchange stops when the consumer goes away, so a tenant stops
/// paying when its client disconnects.
///
/// The connection delivers each HTTP chunk, and an upstream that sends one event per chunk delivers
/// many in one socket read. The pull reader (`next`) takes everything that has arrived when it asks,
/// so those events go out in one write; an event that arrives alone still goes out at once.
final class UpstreamBody: Sendable {
    private struct State {
        var buffered: ByteBuffer?
        /// Set once: the upstream finished, or failed with an error. Bytes buffered before it are
        /// still taken first.
        var end: Result<Void, any Error>?
        var consumer: CheckedContinuation<Void, Never>?
        /// The connection's reads are paused until the consumer takes the buffer.
        var paused: EventLoopPromise<Void>?
        /// Stops the upstream exchange (closes its connection), if the body is abandoned before its end.
        var stop: (@Sendable () -> Void)?
        var abandoned = false
        /// Once set, chunks and the end go straight to it instead of the buffer.
        var sink: (any UpstreamBodySink)?
    }

    /// Above this many buffered bytes the upstream is not read until the consumer catches up.
    static let highWatermark = 64 << 10

    private let state = Mutex(State())
    /// The loop the upstream connection reads on, where `append` and `finish` are called.
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// What stops the upstream exchange if the consumer leaves first.
    func onAbandon(_ stop: @escaping @Sendable () -> Void) {
        let abandoned = state.withLock { s in
            s.stop = stop
            return s.abandoned
        }
        if abandoned { stop() }
    }

    /// One received chunk. A returned future holds the next read back until it completes.
    func append(_ chunk: ByteBuffer) -> EventLoopFuture<Void>? {
        enum Next {
            case push(any UpstreamBodySink)
            case buffered(consumer: CheckedContinuation<Void, Never>?, paused: EventLoopPromise<Void>?)
        }
        let next = state.withLock { s -> Next in
            if s.abandoned { return .buffered(consumer: nil, paused: nil) }
            if let sink = s.sink { return .push(sink) }
            if var buffered = s.buffered {
                s.buffered = nil  // keep the storage unique while appending
                var chunk = chunk
                buffered.writeBuffer(&chunk)
                s.buffered = buffered
            } else {
                s.buffered = chunk
            }
            let consumer = s.consumer
            s.consumer = nil
            guard s.buffered?.readableBytes ?? 0 >= Self.highWatermark else {
                return .buffered(consumer: consumer, paused: nil)
            }
            let paused = eventLoop.makePromise(of: Void.self)
            s.paused = paused
            return .buffered(consumer: consumer, paused: paused)
        }
        switch next {
        case .push(let sink):
            return sink.receive(chunk)
        case .buffered(let consumer, let paused):
            consumer?.resume()
            return paused?.futureResult
        }
    }

    func finish(_ end: Result<Void, any Error>) {
        let (consumer, sink) = state.withLock { s -> (CheckedContinuation<Void, Never>?, (any UpstreamBodySink)?) in
            if s.end == nil { s.end = end }
            s.stop = nil  // it holds the exchange, which holds this body
            defer { s.consumer = nil }
            return (s.consumer, s.sink)
        }
        consumer?.resume()
        sink?.end(end)
    }

    /// From now on chunks go to `sink` as the connection delivers them, on this body's event loop,
    /// which must be the sink's. What is buffered goes first.
    func push(to sink: any UpstreamBodySink) -> Bool {
        guard sink.eventLoop === eventLoop else { return false }
        if eventLoop.inEventLoop {
            attach(sink)
        } else {
            eventLoop.execute { self.attach(sink) }
        }
        return true
    }

    private func attach(_ sink: any UpstreamBodySink) {
        typealias Pending = (buffered: ByteBuffer?, end: Result<Void, any Error>?, paused: EventLoopPromise<Void>?)
        let (buffered, end, paused) = state.withLock { s -> Pending in
            if s.abandoned { return (nil, .failure(CancellationError()), nil) }
            s.sink = sink
            defer {
                s.buffered = nil
                s.paused = nil
            }
            return (s.buffered, s.end, s.paused)
        }
        sink.start(chunkFollows: buffered != nil)
        let written = buffered.flatMap { sink.receive($0) }
        if let paused {
            if let written { written.cascade(to: paused) } else { paused.succeed() }
        }
        if let end { sink.end(end) }
    }

    /// The consumer is gone: stop the upstream request (unless it already ended) and release anyone
    /// waiting.
    func abandon() {
        let (consumer, paused, stop, sink) = state.withLock { s in
            s.abandoned = true
            s.buffered = nil
            defer {
                s.consumer = nil
                s.paused = nil
                s.stop = nil
                s.sink = nil
            }
            return (s.consumer, s.paused, s.end == nil ? s.stop : nil, s.sink)
        }
        consumer?.resume()
        paused?.succeed()
        stop?()
        // On the loop, after any chunk the sink is taking there: its state is read once it has ended.
        if let sink {
            if eventLoop.inEventLoop {
                sink.end(.failure(CancellationError()))
            } else {
                eventLoop.execute { sink.end(.failure(CancellationError())) }
            }
        }
    }

    private enum Step {
        case bytes(ByteBuffer, resume: EventLoopPromise<Void>?)
        case end(Result<Void, any Error>)
        case wait
    }

    /// Everything received since the last call; nil at a clean end; throws where the body broke
    /// off (after every byte received before the break has been returned).
    func next() async throws -> ByteBuffer? {
        while true {
            let step = state.withLock { s -> Step in
                if s.abandoned { return .end(.failure(CancellationError())) }
                if let buffered = s.buffered {
                    s.buffered = nil
                    defer { s.paused = nil }
                    return .bytes(buffered, resume: s.paused)
                }
                if let end = s.end { return .end(end) }
                return .wait
            }
            switch step {
            case .bytes(let bytes, let resume):
                resume?.succeed()
                return bytes
            case .end(let end):
                try end.get()
                return nil
            case .wait:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let ready = state.withLock { s in
                            if s.abandoned || s.buffered != nil || s.end != nil { return true }
                            s.consumer = continuation
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    abandon()
                }
            }
        }
    }
}

/// An HTTP upstream's body as the relay reads it. When the last holder lets go, read to the end or not,
/// the upstream exchange stops: a response nobody will read is not paid for.
final class UpstreamBodyHandle: UpstreamBodySource {
    let body: UpstreamBody

    init(_ body: UpstreamBody) { self.body = body }

    func next() async throws -> ByteBuffer? { try await body.next() }

    func abandon() { body.abandon() }

    func push(to sink: any UpstreamBodySink) -> Bool { body.push(to: sink) }

    deinit { body.abandon() }
}
