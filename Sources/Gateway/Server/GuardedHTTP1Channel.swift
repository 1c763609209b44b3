import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Metering
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// One client connection as the request path sees it: which request is in progress on it, and whether
/// it has closed.
///
/// The handler of a request cannot see its connection reset while it awaits the upstream, and the body
/// of a response never runs if the connection closed before it; the connection tells the request's
/// ``SettlementOwner`` instead, so its reservation is released and its record written.
final class ConnectionWatch: Sendable {
    private struct State {
        weak var owner: SettlementOwner?
        var closed = false
    }

    private let state = Mutex(State())
    /// The client connection itself: a relay writes an upstream's chunks to it directly.
    let channel: any Channel

    init(channel: any Channel) { self.channel = channel }

    /// The connection whose request is being handled by the current task.
    @TaskLocal static var current: ConnectionWatch?

    /// The request in progress on this connection (HTTP/1 handles one at a time).
    func attach(_ owner: SettlementOwner) {
        let closed = state.withLock { s in
            s.owner = owner
            return s.closed
        }
        if closed { owner.clientClosed() }
    }

    func connectionClosed() {
        let owner = state.withLock { s -> SettlementOwner? in
            s.closed = true
            defer { s.owner = nil }
            return s.owner
        }
        owner?.clientClosed()
    }
}

/// Limits on client connections, from `server:` in gateway.yaml.
public struct ConnectionLimits: Sendable, Equatable {
    /// From the first byte of a request to its complete head.
    public var headerTimeout: TimeAmount
    /// An open connection with no request in progress, or a request body that stops arriving, is
    /// closed after this long.
    public var idleTimeout: TimeAmount
    /// A response sent with `Connection: close` half-closes the connection; whatever the client still
    /// sends is read and dropped for at most this long before the connection closes.
    public var lingerTimeout: TimeAmount = .seconds(2)

    public init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }
}

/// Hummingbird's HTTP/1 channel with the gateway's connection guards: a header read timeout, the idle
/// timeout, closing after a response that says `Connection: close`, and a ``ConnectionWatch`` per
/// connection for the requests on it.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let watch: ConnectionWatch
        var channel: any Channel { asyncChannel.channel }
    }

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits
    private let inner: HTTP1Channel

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits) {
        self.responder = responder
        self.limits = limits
        // A header block larger than this is refused by the decoder (and the connection closed).
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(
            maxHeaderFieldSize: 16 << 10, maxHeaderListSize: 64 << 10, maxHeaderFieldCount: 200)
        self.inner = HTTP1Channel(
            responder: responder,
            configuration: .init(idleTimeout: limits.idleTimeout, httpDecoderConfiguration: decoder))
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = limits
        return inner.setup(channel: channel, logger: logger).flatMapThrowing { asyncChannel in
            let watch = ConnectionWatch(channel: channel)
            let timer = HeaderTimer(timeout: limits.headerTimeout, channel: channel)
            let operations = channel.pipeline.syncOperations
            // A connection keeps its last receive buffer for the next read; NIO starts at 2 KiB. Requests
            // of a few hundred bytes are the common case, and the buffer grows when reads fill it.
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            try operations.addHandler(HeaderTimeoutHandler(timer: timer), position: .first)
            let stateHandler = try operations.handler(type: HTTPConnectionStateHandler.self)
            try operations.addHandler(
                ConnectionObserver(timer: timer, watch: watch, linger: limits.lingerTimeout),
                position: .before(stateHandler))
            return Value(asyncChannel: asyncChannel, watch: watch)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await ConnectionWatch.$current.withValue(value.watch) {
            await handleHTTP(asyncChannel: value.asyncChannel, logger: logger)
        }
    }
}

/// When the head of the request being read must be complete. Shared by the two handlers below, which
/// run on the connection's event loop.
private final class HeaderTimer {
    let timeout: TimeAmount
    /// Set from a new request's first byte until its head is complete.
    private(set) var deadline: NIODeadline?
    /// A request head has arrived and its response has not ended: no header deadline applies.
    var requestInProgress = false
    private var checks: LazyDeadlineCheck?

    init(timeout: TimeAmount, channel: any Channel) {
        self.timeout = timeout
        checks = LazyDeadlineCheck(loop: channel.eventLoop) { [weak self, weak channel] in
            guard let self, let deadline = self.deadline else { return nil }
            guard deadline <= .now() else { return deadline }
            channel?.close(promise: nil)
            return nil
        }
    }

    /// The first byte of a new request: its head must be complete within the timeout.
    func start() {
        deadline = .now() + timeout
        checks?.arm(at: deadline)
    }

    func headArrived() {
        deadline = nil
        requestInProgress = true
    }

    /// The connection is done with: nothing is checked any more.
    func stop() {
        deadline = nil
        checks?.stop()
    }
}

/// First in the pipeline: the first byte of a new request starts the header deadline.
private final class HeaderTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let timer: HeaderTimer

    init(timer: HeaderTimer) { self.timer = timer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !timer.requestInProgress && timer.deadline == nil { timer.start() }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer.stop() }
}

/// Between the HTTP codec and Hummingbird: sees each request head and response part.
private final class ConnectionObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let timer: HeaderTimer
    let watch: ConnectionWatch
    let linger: TimeAmount
    private var closeAfterResponse = false
    private var answeredParseError = false

    init(timer: HeaderTimer, watch: ConnectionWatch, linger: TimeAmount) {
        self.timer = timer
        self.watch = watch
        self.linger = linger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { timer.headArrived() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            timer.requestInProgress = false
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                return
            }
            // Half-close once the response is out, so the client reads all of it; then close for good
            // after the linger time, whatever the client keeps sending.
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            let channel = context.channel
            let linger = linger
            written.futureResult.whenComplete { _ in
                channel.close(mode: .output, promise: nil)
                channel.eventLoop.scheduleTask(in: linger) { channel.close(promise: nil) }
            }
        }
    }

    /// A request that is not valid HTTP (or whose head is too large) gets an error in the API's format,
    /// with a request id, and the connection closes: there is no telling where the next request starts.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !timer.requestInProgress, !answeredParseError else {
            context.close(promise: nil)
            return
        }
        answeredParseError = true
        timer.stop()
        let tooLarge = parseError == .headerOverflow
        let status: HTTPResponse.Status = tooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        let body = ByteBuffer(
            string: ErrorBody.render(
                dialect: .openai, status: status.code,
                message: tooLarge
                    ? "The request headers are larger than this gateway accepts."
                    : "The request is not valid HTTP/1.1 (\(parseError)).",
                openAIType: "invalid_request_error", code: tooLarge ? "headers_too_large" : "malformed_request"))
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.requestID] = RequestIDs.next()
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer.stop()
        watch.connectionClosed()
        context.fireChannelInactive()
    }

    /// The client closed its side (FIN). A client that still wants its answer does not do that, so
    /// the request in progress is treated as abandoned, as a reverse proxy does (nginx's 499).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { watch.connectionClosed() }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch.connectionClosed()
    }
}
