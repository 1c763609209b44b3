import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// Bridges AsyncHTTPClient's delegate callbacks to an async sequence of body chunks.
///
/// Why not `HTTPClientResponse.Body`: when an upstream connection breaks, that body throws at once and
/// drops chunks it had already received. A proxy that bills what it delivered must hand every received
/// byte to the client (and the meter) before reporting the break. This bridge does that, keeps
/// backpressure (the upstream is read only as fast as the client takes it), and cancels the upstream
/// request when the consumer goes away, so a tenant stops paying when its client disconnects.
final class StreamingResponseDelegate: HTTPClientResponseDelegate {
    typealias Response = Void
    typealias Chunks = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Demand
    >

    /// Signals from the consumer side of the sequence.
    final class Demand: NIOAsyncSequenceProducerDelegate {
        let state = Mutex<(waiter: EventLoopPromise<Void>?, task: HTTPClient.Task<Void>?, terminated: Bool)>(
            (nil, nil, false))

        func produceMore() {
            let waiter = state.withLock { s -> EventLoopPromise<Void>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.succeed()
        }

        func didTerminate() {
            let (waiter, task) = state.withLock { s -> (EventLoopPromise<Void>?, HTTPClient.Task<Void>?) in
                s.terminated = true
                defer { s.waiter = nil }
                return (s.waiter, s.task)
            }
            waiter?.succeed()
            task?.cancel()
        }
    }

    let chunks: Chunks
    private let source: Chunks.Source
    private let demand: Demand
    private let head: EventLoopPromise<HTTPResponseHead>
    private let headSettled = Mutex(false)

    init(eventLoop: any EventLoop) {
        let demand = Demand()
        let made = Chunks.makeSequence(
            elementType: ByteBuffer.self,
            failureType: (any Error).self,
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8),
            finishOnDeinit: false,
            delegate: demand)
        self.chunks = made.sequence
        self.source = made.source
        self.demand = demand
        self.head = eventLoop.makePromise(of: HTTPResponseHead.self)
    }

    func attach(task: HTTPClient.Task<Void>) {
        let terminated = demand.state.withLock { s -> Bool in
            s.task = task
            return s.terminated
        }
        if terminated { task.cancel() }
    }

    /// Resolves with the response head, or fails with the error that came first.
    var headFuture: EventLoopFuture<HTTPResponseHead> { head.futureResult }

    func failHead(_ error: any Error) {
        if headSettled.withLock({ s in
            defer { s = true }; return !s
        }) {
            head.fail(error)
        }
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
        switch source.yield(buffer) {
        case .produceMore, .dropped:
            return task.eventLoop.makeSucceededVoidFuture()
        case .stopProducing:
            let promise = task.eventLoop.makePromise(of: Void.self)
            let alreadyTerminated = demand.state.withLock { s -> Bool in
                if s.terminated { return true }
                s.waiter = promise
                return false
            }
            if alreadyTerminated { promise.succeed() }
            return promise.futureResult
        }
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        failHead(error)
        source.finish(error)
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        source.finish()
    }
}
