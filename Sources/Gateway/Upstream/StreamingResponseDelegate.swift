import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// Bridges AsyncHTTPClient's delegate callbacks to the relay: the response head as a future, the body
/// as ``Body``.
///
/// Why not `HTTPClientResponse.Body`: when an upstream connection breaks, that body throws at once and
/// drops chunks it had already received. A proxy that bills what it delivered must hand every received
/// byte to the client (and the meter) before reporting the break. This bridge does that, keeps
/// backpressure (the upstream is read only as fast as the client takes it), and cancels the upstream
/// request when the consumer goes away, so a tenant stops paying when its client disconnects.
final class StreamingResponseDelegate: HTTPClientResponseDelegate {
    typealias Response = Void

    /// The body bytes received and not yet taken, handed over all at once.
    ///
    /// AsyncHTTPClient calls the delegate once per HTTP chunk, and an upstream that sends one event per
    /// chunk delivers many in one socket read. The relay takes everything that has arrived when it asks,
    /// so those events go to the client in one write, not one write (and one task switch) each. An
    /// event that arrives alone still goes out at once: nothing waits for more.
    final class Body: Sendable {
        private struct State {
            var buffered: ByteBuffer?
            /// Set once: the upstream finished, or failed with an error. Bytes buffered before it are
            /// still taken first.
            var end: Result<Void, any Error>?
            var consumer: CheckedContinuation<Void, Never>?
            /// AsyncHTTPClient's read is paused until the consumer takes the buffer.
            var paused: EventLoopPromise<Void>?
            var task: HTTPClient.Task<Void>?
            var abandoned = false
            /// Once set, chunks and the end go straight to it instead of the buffer.
            var sink: (any UpstreamBodySink)?
        }

        /// Above this many buffered bytes the upstream is not read until the consumer catches up.
        static let highWatermark = 64 << 10

        private let state = Mutex(State())
        /// Where AsyncHTTPClient calls the delegate.
        let eventLoop: any EventLoop

        init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

        fileprivate func attach(task: HTTPClient.Task<Void>) {
            let abandoned = state.withLock { s in
                s.task = task
                return s.abandoned
            }
            if abandoned { task.cancel() }
        }

        fileprivate func append(_ chunk: ByteBuffer, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
            enum Next {
                case push(any UpstreamBodySink)
                case buffered(consumer: CheckedContinuation<Void, Never>?, paused: EventLoopPromise<Void>?)
            }
            let next = state.withLock { s -> Next in
                if let sink = s.sink { return .push(sink) }
                if s.abandoned { return .buffered(consumer: nil, paused: nil) }
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
                return sink.receive(chunk) ?? eventLoop.makeSucceededVoidFuture()
            case .buffered(let consumer, let paused):
                consumer?.resume()
                return paused?.futureResult ?? eventLoop.makeSucceededVoidFuture()
            }
        }

        fileprivate func finish(_ end: Result<Void, any Error>) {
            let (consumer, sink) = state.withLock { s -> (CheckedContinuation<Void, Never>?, (any UpstreamBodySink)?) in
                if s.end == nil { s.end = end }
                defer { s.consumer = nil }
                return (s.consumer, s.sink)
            }
            consumer?.resume()
            sink?.end(end)
        }

        /// From now on chunks go to `sink` as AsyncHTTPClient delivers them, on this body's event loop,
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
            sink.start()
            let written = buffered.flatMap { sink.receive($0) }
            if let paused {
                if let written { written.cascade(to: paused) } else { paused.succeed() }
            }
            if let end { sink.end(end) }
        }

        /// The consumer is gone: stop the upstream request (unless it already ended) and release anyone
        /// waiting.
        func abandon() {
            let (consumer, paused, task, sink) = state.withLock { s in
                s.abandoned = true
                s.buffered = nil
                defer {
                    s.consumer = nil
                    s.paused = nil
                }
                return (s.consumer, s.paused, s.end == nil ? s.task : nil, s.sink)
            }
            consumer?.resume()
            paused?.succeed()
            task?.cancel()
            sink?.end(.failure(CancellationError()))
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

    let body: Body
    private let head: EventLoopPromise<HTTPResponseHead>
    private let headSettled = Mutex(false)

    init(eventLoop: any EventLoop) {
        self.head = eventLoop.makePromise(of: HTTPResponseHead.self)
        self.body = Body(eventLoop: eventLoop)
    }

    func attach(task: HTTPClient.Task<Void>) {
        body.attach(task: task)
    }

    /// Resolves with the response head, or fails with the error that came first.
    var headFuture: EventLoopFuture<HTTPResponseHead> { head.futureResult }

    /// Fails the head if it has not arrived yet; returns whether it did.
    @discardableResult
    func failHead(_ error: any Error) -> Bool {
        let first = headSettled.withLock { s in
            defer { s = true }
            return !s
        }
        if first { head.fail(error) }
        return first
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        if headSettled.withLock({ s in
            defer { s = true }; return !s
        }) {
            self.head.succeed(head)
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        body.append(buffer, on: task.eventLoop)
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        failHead(error)
        body.finish(.failure(error))
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        body.finish(.success(()))
    }
}
