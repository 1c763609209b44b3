import HTTPTypes
import HummingbirdCore
import Metering
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The whole HTTP/1.1 side of a client connection: requests are parsed from bytes
/// (``ClientRequestParser``) and handed to the connection's task one at a time (``nextRequest(_:)``),
/// responses written as bytes, with the connection's guards (header and idle timeouts, closing after a
/// response that says `Connection: close`, the ``ConnectionWatch``) in the same place.
///
/// One handler instead of NIO's decoder and encoder, the HTTP types converter, Hummingbird's state
/// handler, two guards and `NIOAsyncChannel`: each request and response part crossed seven stages, and
/// each connection set up, notified and tore down as many handlers and an async stream each way.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = ByteBuffer

    let watch: ConnectionWatch
    private let limits: ConnectionLimits
    private var parser = ClientRequestParser()
    private var context: ChannelHandlerContext?
    /// Requests whose responses have not ended, oldest first.
    private var exchanges: [Exchange] = []
    private var framing = BodyFraming.none
    /// A response's head has gone out and its end has not.
    private var responding = false
    /// A request's body is being read.
    private var readingBody = false
    /// Set from a new request's first byte until its head is complete.
    private var headDeadline: NIODeadline?
    private var lastActivity = NIODeadline.now()
    private var checks: LazyDeadlineCheck?
    /// After a response that ends the connection, or a request that cannot be read: what the client
    /// still sends is dropped.
    private var discarding = false
    /// Requests are still taken from what was read (off after one that ends the connection or cannot be
    /// read; on while shutting down, for requests already read).
    private var parsing = true
    /// The response under way said `Connection: close` (or has no other end): the connection closes
    /// after it.
    private var closeAfterResponse = false
    /// Shutting down, or the client closed its side: the connection closes once what was read is answered.
    private var closeWhenAnswered = false
    /// Since when the client has taken nothing of what the connection holds for it (the channel has not
    /// been writable).
    private var stalledSince: NIODeadline?

    /// Requests for the connection's task (on the event loop, as all below).
    private(set) var handover = RequestHandover()
    /// A request whose head is read and whose body is being gathered before it is handed over.
    private var gathering: (head: HTTPRequest, body: ByteBuffer?)?
    /// The body of the request handed over while it was still arriving.
    private var streamedBody: ClientRequestBody?
    /// Bytes read after a complete request, kept until its response has ended (pipelining).
    private var held: ByteBuffer?
    /// Reading stopped: too much held, or a streamed body not taken.
    private var reads = ReadGate()
    /// The task, waiting until the client takes what is written.
    private var writableWaiter: UnsafeContinuation<Void, any Error>?
    /// The connection is gone: no more requests, no more writes.
    private var closed = false
    /// The channel's writability as NIO last reported it (the channel's own is a separate atomic).
    private(set) var isWritable = true
    /// The channel's allocator, kept: reaching it through the context costs reference counts.
    private var allocator = ByteBufferAllocator()
    private let noBytes = ByteBuffer()

    /// How much of what a client sends after a complete request is kept while it is answered.
    static let holdLimit = 64 << 10

    init(watch: ConnectionWatch, limits: ConnectionLimits) {
        self.watch = watch
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        checks = LazyDeadlineCheck(loop: context.eventLoop) { [weak self] in self?.checkDeadlines() }
        lastActivity = .now()
        checks?.arm(at: lastActivity + limits.idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    /// The connection is gone: the request in progress is told, its body (if still arriving) breaks
    /// off, and the task gets no more requests and no more writes.
    private func stop() {
        checks?.stop()
        checks = nil
        context = nil
        guard !closed else { return }
        closed = true
        watch.connectionClosed()
        streamedBody?.finish(HTTPParserError.invalidEOFState)
        streamedBody = nil
        handover.close()
        if let writableWaiter {
            self.writableWaiter = nil
            writableWaiter.resume(throwing: ChannelError.ioOnClosedChannel)
        }
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discarding else { return }
        var buffer = unwrapInboundIn(data)
        lastActivity = .now()
        // A request is complete and being answered: what follows waits for its response to end. It is
        // still read, so a client that goes away is noticed.
        if !exchanges.isEmpty && !readingBody {
            hold(buffer)
            return
        }
        parse(&buffer, context: context)
    }

    private func hold(_ buffer: ByteBuffer) {
        if held == nil {
            held = buffer
        } else {
            held!.writeImmutableBuffer(buffer)
        }
        if held!.readableBytes > Self.holdLimit { reads.pause() }
    }

    private func parse(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) {
        // The first byte of a new request (not the rest of a body answered early) starts its deadline.
        if exchanges.isEmpty && !readingBody && headDeadline == nil && buffer.readableBytes > 0 { startHeadDeadline() }
        do {
            while parsing, let event = try parser.next(&buffer) {
                switch event {
                case .head(let head):
                    headDeadline = nil
                    readingBody = true
                    exchanges.append(
                        Exchange(
                            keepAlive: head.keepAlive, isHTTP10: head.isHTTP10, isHead: head.request.method == .head))
                    gathering = (head.request, nil)
                    // Its body is read at once, so the client need not wait to send it; not while an
                    // earlier answer is under way, which the interim response would cut into.
                    if head.expectsContinue && exchanges.count == 1 && !responding {
                        context.writeAndFlush(
                            wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                    }
                case .body(let slice):
                    if let body = streamedBody {
                        if body.append(slice) { reads.pause() }
                    } else if gathering?.body == nil {
                        gathering?.body = slice
                    } else {
                        gathering?.body?.writeImmutableBuffer(slice)
                    }
                case .end:
                    readingBody = false
                    if let body = streamedBody {
                        streamedBody = nil
                        body.finish()
                    } else if let (head, body) = gathering {
                        gathering = nil
                        handover.handOver(Request(head: head, body: RequestBody(buffer: body ?? ByteBuffer())))
                    }
                    // Nothing after a request that ends the connection is read, nor while shutting down.
                    if closeWhenAnswered { discarding = true }
                    if exchanges.last?.keepAlive == false {
                        discarding = true
                        parsing = false
                    } else if buffer.readableBytes > 0 {
                        // The next request waits for this one's response.
                        hold(buffer)
                        return
                    }
                }
            }
            // The bytes read so far are used up and the body is still arriving: its handler starts on
            // what is here and reads the rest as it comes.
            if let (head, body) = gathering {
                gathering = nil
                let (loop, me) = (context.eventLoop, WeakReference(self))
                let stream = ClientRequestBody { loop.execute { me.value?.resumeReading() } }
                if let body, stream.append(body) { reads.pause() }
                streamedBody = stream
                handover.handOver(Request(head: head, body: RequestBody(asyncSequence: stream)))
            }
        } catch {
            requestFailed(context: context, error)
        }
    }

    /// The connection's task asks for the next request; `nil` once the connection has closed.
    func nextRequest(_ continuation: UnsafeContinuation<Request?, Never>) {
        handover.next(continuation)
    }

    private func resumeReading() {
        reads.resume(context)
    }

    func read(context: ChannelHandlerContext) {
        reads.read(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        abort(context: context, error)
    }

    /// A request that is not valid HTTP (or whose head is too large) gets an error in the API's format,
    /// with a request id, and the connection closes: there is no telling where the next request starts.
    private func requestFailed(context: ChannelHandlerContext, _ error: HTTPParserError) {
        discarding = true
        parsing = false
        headDeadline = nil
        if readingBody {
            // The body being read is broken: its reader sees an error, not an end, and the connection
            // closes (there is no telling where the next request starts).
            abort(context: context, error)
            return
        }
        let out = Self.malformedRequestResponse(error, allocator: context.channel.allocator)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Responses

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        writePart(unwrapOutboundIn(data), context: context, promise: promise)
    }

    // The connection's task writes its responses with these, on the event loop. Each throws once the
    // connection is gone.

    /// A response head; it goes out with the body or the end that follows.
    func sendHead(_ head: HTTPResponse) throws {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        writePart(.head(head), context: context, promise: nil)
    }

    /// A part of the body, flushed; returns whether the client is taking what is written.
    /// An empty part sends what is written so far (the head).
    func sendBody(_ chunk: ByteBuffer) throws -> Bool {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        if chunk.readableBytes == 0 {
            context.flush()
        } else {
            writeBody(chunk, context: context, flush: true, promise: nil)
        }
        return isWritable
    }

    /// The end of the response; returns whether the client is taking what is written (the next request
    /// waits for it if not).
    func sendEnd(_ trailers: HTTPFields?) throws -> Bool {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        writePart(.end(trailers), context: context, promise: nil)
        return isWritable
    }

    /// Resumes the task when the client takes what is written, or when the connection is gone.
    func whenWritable(_ continuation: UnsafeContinuation<Void, any Error>) {
        if closed {
            continuation.resume(throwing: ChannelError.ioOnClosedChannel)
        } else if isWritable {
            continuation.resume()
        } else {
            writableWaiter = continuation
        }
    }

    private func writePart(_ part: HTTPResponsePart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch part {
        case .head(let response):
            var out = allocator.buffer(capacity: 512)
            if response.status.kind == .informational {
                Self.writeHead(Self.withoutFraming(response), addChunked: false, into: &out)
                context.write(wrapOutboundOut(out), promise: promise)
                return
            }
            responding = true
            let exchange = exchanges.first ?? Exchange(keepAlive: false, isHTTP10: false, isHead: false)
            // Answered before its body is in (an auth error, a body over the limit): the rest of the body
            // is not read, so nothing after it can be told apart; the connection closes, lingering.
            let plan = Self.plan(response, for: exchange, closing: readingBody)
            framing = plan.framing
            if plan.closes { closeAfterResponse = true }
            Self.writeHead(plan.head, addChunked: plan.addChunked, into: &out)
            context.write(wrapOutboundOut(out), promise: promise)
        case .body(let body):
            writeBody(body, context: context, flush: false, promise: promise)
        case .end(let trailers):
            // Only chunked coding has bytes for the end; the others end with nothing written.
            var out = noBytes
            if case .chunked = framing {
                out = allocator.buffer(capacity: 5)
                out.writeStaticString("0\r\n")
                for field in trailers ?? [:] { Self.writeField(field, into: &out) }
                out.writeStaticString("\r\n")
            }
            framing = .none
            responding = false
            responseEnded(context: context, last: out, promise: promise)
        }
    }

    /// A relayed chunk of the response under way, framed here and written at once: no handler above this
    /// one looks at body parts. On the event loop.
    func relayBody(_ chunk: ByteBuffer, promise: EventLoopPromise<Void>?) {
        guard let context, responding else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        writeBody(chunk, context: context, flush: true, promise: promise)
    }

    private func writeBody(
        _ body: ByteBuffer, context: ChannelHandlerContext, flush: Bool, promise: EventLoopPromise<Void>?
    ) {
        let out: ByteBuffer
        switch framing {
        case .none:
            promise?.succeed()
            return
        case .identity:
            out = body
        case .chunked:
            guard body.readableBytes > 0 else {
                // An empty chunk would end the body.
                promise?.succeed()
                return
            }
            var framed = allocator.buffer(capacity: body.readableBytes + 20)
            Self.writeChunk(body, into: &framed)
            out = framed
        }
        if flush {
            context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        } else {
            context.write(wrapOutboundOut(out), promise: promise)
        }
    }

    private func responseEnded(context: ChannelHandlerContext, last: ByteBuffer, promise: EventLoopPromise<Void>?) {
        let exchange = exchanges.isEmpty ? nil : exchanges.removeFirst()
        lastActivity = .now()
        // Idle from here: a client that does not read what is still queued cannot hold the connection.
        checks?.arm(at: lastActivity + limits.idleTimeout)
        let closing =
            closeAfterResponse || exchange?.keepAlive == false
            || (closeWhenAnswered && exchanges.isEmpty && held == nil)
        guard closing else {
            if last.readableBytes > 0 {
                context.write(wrapOutboundOut(last), promise: promise)
            } else {
                promise?.succeed()
            }
            context.flush()
            // Bytes of the next request may already be here, read while this response was made.
            reads.unpause()
            if var next = held {
                held = nil
                parse(&next, context: context)
                if closeWhenAnswered {
                    // Shutting down: a body still arriving is read to its end; no whole request, no answer.
                    if readingBody { discarding = false }
                    if exchanges.isEmpty { context.close(promise: nil) }
                }
            } else if exchanges.isEmpty && parser.isInHead {
                startHeadDeadline()
            }
            if !reads.paused { reads.resume(context) }
            return
        }
        // Half-close once the response is out, so the client reads all of it; then close for good after
        // the linger time, whatever the client keeps sending.
        discarding = true
        parsing = false
        held = nil
        exchanges = []
        if readingBody { breakBody(CancellationError()) }
        // Read and dropped while lingering: bytes unread at the close would reset the answer away.
        reads.resume(context)
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.cascade(to: promise)
        context.writeAndFlush(wrapOutboundOut(last), promise: written)
        let channel = context.channel
        let linger = limits.lingerTimeout
        written.futureResult.whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
        }
    }

    // MARK: Connection

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if isWritable {
            stalledSince = nil
            if let writableWaiter {
                self.writableWaiter = nil
                writableWaiter.resume()
            }
        } else {
            let now = NIODeadline.now()
            stalledSince = now
            checks?.arm(at: now + limits.idleTimeout)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Shutting down: an idle connection closes now, a busy one after its response.
            if exchanges.isEmpty {
                context.close(promise: nil)
            } else {
                // A body still arriving is read to its end.
                if !readingBody { discarding = true }
                closeWhenAnswered = true
            }
            return
        }
        // The client closed its side (FIN). A client that still wants its answer does not do that, so
        // the request in progress is treated as abandoned, as a reverse proxy does (nginx's 499), and
        // the connection closes once it is answered.
        if let event = event as? ChannelEvent, event == .inputClosed {
            watch.connectionClosed()
            // A body cut off here is an error to its reader, not an end.
            if readingBody { breakBody(HTTPParserError.invalidEOFState) }
            discarding = true
            held = nil
            if exchanges.isEmpty {
                context.close(promise: nil)
            } else {
                closeWhenAnswered = true
            }
        }
    }

    /// Closes the connection; a body being read sees `error` rather than an end.
    private func abort(context: ChannelHandlerContext, _ error: any Error) {
        if readingBody { breakBody(error) }
        context.close(promise: nil)
    }

    private func breakBody(_ error: any Error) {
        readingBody = false
        streamedBody?.finish(error)
        streamedBody = nil
    }

    private func startHeadDeadline() {
        let deadline = NIODeadline.now() + limits.headerTimeout
        headDeadline = deadline
        checks?.arm(at: deadline)
    }

    /// Closes the connection if a deadline has passed; returns the next one.
    private func checkDeadlines() -> NIODeadline? {
        let now = NIODeadline.now()
        // A request being handled (its body read) has no idle deadline: the upstream has its own. A
        // response the client reads nothing of for as long has one, as nginx's send_timeout.
        let idle = exchanges.isEmpty || readingBody ? lastActivity + limits.idleTimeout : nil
        let stalled = stalledSince.map { $0 + limits.idleTimeout }
        let deadlines = [headDeadline, idle, stalled].compactMap { $0 }
        if deadlines.contains(where: { $0 <= now }) {
            if let context { abort(context: context, HTTPParserError.invalidEOFState) }
            return nil
        }
        return deadlines.min()
    }
}
