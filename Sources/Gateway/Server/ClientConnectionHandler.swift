import HTTPTypes
import Metering
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The whole HTTP/1.1 side of a client connection, below Hummingbird's `NIOAsyncChannel`: requests are
/// parsed from bytes (``ClientRequestParser``) and responses written as bytes, with the connection's
/// guards (header and idle timeouts, closing after a response that says `Connection: close`, the
/// ``ConnectionWatch``) in the same place.
///
/// One handler instead of NIO's decoder and encoder, the HTTP types converter, Hummingbird's state
/// handler and two guards: each request and response part crossed six pipeline stages, and each
/// connection set up, notified and tore down six handlers.
final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = ByteBuffer

    /// How one response's body goes on the wire.
    private enum BodyFraming {
        case chunked
        /// As it is: the head has a `Content-Length`, or the connection closes at its end.
        case identity
        /// No body at all (a response to HEAD, 1xx, 204, 304).
        case none
    }

    /// What a response needs to know about its request, in order (requests may be pipelined).
    private struct Exchange {
        var keepAlive: Bool
        var isHTTP10: Bool
        var isHead: Bool
    }

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
    /// The response under way said `Connection: close` (or has no other end): the connection closes
    /// after it.
    private var closeAfterResponse = false
    /// Shutting down, or a later request could not be read: the connection closes once every request
    /// read so far is answered.
    private var closeWhenAnswered = false
    /// Since when the client has taken nothing of what the connection holds for it (the channel has not
    /// been writable).
    private var stalledSince: NIODeadline?

    init(watch: ConnectionWatch, limits: ConnectionLimits) {
        self.watch = watch
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        checks = LazyDeadlineCheck(loop: context.eventLoop) { [weak self] in self?.checkDeadlines() }
        lastActivity = .now()
        checks?.arm(at: lastActivity + limits.idleTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        watch.connectionClosed()
    }

    private func stop() {
        checks?.stop()
        checks = nil
        context = nil
    }

    // MARK: Requests

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discarding else { return }
        var buffer = unwrapInboundIn(data)
        lastActivity = .now()
        // The first byte of a new request (not the rest of a body answered early) starts its deadline.
        if exchanges.isEmpty && !readingBody && headDeadline == nil { startHeadDeadline() }
        do {
            while !discarding, let event = try parser.next(&buffer) {
                switch event {
                case .head(let head):
                    headDeadline = nil
                    readingBody = true
                    exchanges.append(
                        Exchange(
                            keepAlive: head.keepAlive, isHTTP10: head.isHTTP10, isHead: head.request.method == .head))
                    context.fireChannelRead(wrapInboundOut(.head(head.request)))
                    // Its body is read at once, so the client need not wait to send it; not while an
                    // earlier answer is under way, which the interim response would cut into.
                    if head.expectsContinue && exchanges.count == 1 && !responding {
                        context.writeAndFlush(
                            wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
                    }
                case .body(let slice):
                    context.fireChannelRead(wrapInboundOut(.body(slice)))
                case .end:
                    readingBody = false
                    context.fireChannelRead(wrapInboundOut(.end(nil)))
                    // Nothing after a request that ends the connection is read.
                    if exchanges.last?.keepAlive == false { discarding = true }
                }
            }
        } catch {
            requestFailed(context: context, error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    /// A request that is not valid HTTP (or whose head is too large) gets an error in the API's format,
    /// with a request id, and the connection closes: there is no telling where the next request starts.
    private func requestFailed(context: ChannelHandlerContext, _ error: HTTPParserError) {
        discarding = true
        headDeadline = nil
        if readingBody {
            // The body being read is broken: its reader sees an error, not an end, and the connection
            // closes (there is no telling where the next request starts).
            abort(context: context, error)
            return
        }
        // A request after the ones being answered is broken: they are answered, then the connection
        // closes.
        guard exchanges.isEmpty else {
            closeWhenAnswered = true
            return
        }
        let tooLarge = error == .headerOverflow
        let status: HTTPResponse.Status = tooLarge ? .requestHeaderFieldsTooLarge : .badRequest
        let body = ByteBuffer(
            string: ErrorBody.render(
                dialect: .openai, status: status.code,
                message: tooLarge
                    ? "The request headers are larger than this gateway accepts."
                    : "The request is not valid HTTP/1.1 (\(error)).",
                openAIType: "invalid_request_error", code: tooLarge ? "headers_too_large" : "malformed_request"))
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.readableBytes)
        head.headerFields[.requestID] = RequestIDs.next()
        head.headerFields[.connection] = "close"
        var out = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        Self.writeHead(head, addChunked: false, into: &out)
        out.writeImmutableBuffer(body)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }

    // MARK: Responses

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let response):
            var out = context.channel.allocator.buffer(capacity: 512)
            var response = response
            let code = response.status.code
            // No body and so no framing fields, as NIO's encoder held: a 1xx or 204 has neither, a 304
            // no coding.
            if code < 200 || code == 204 {
                response.headerFields[.contentLength] = nil
                response.headerFields[.transferEncoding] = nil
            } else if code == 304 {
                response.headerFields[.transferEncoding] = nil
            }
            if response.status.kind == .informational {
                Self.writeHead(response, addChunked: false, into: &out)
                context.write(wrapOutboundOut(out), promise: promise)
                return
            }
            responding = true
            let exchange = exchanges.first ?? Exchange(keepAlive: false, isHTTP10: false, isHead: false)
            let fields = response.headerFields
            if fields.combined(.connection).map({ ClientRequestParser.isOption($0[...], "close") }) == true {
                closeAfterResponse = true
            }
            let hasBody = !exchange.isHead && code != 204 && code != 304
            let chunked: Bool
            if fields.contains(.contentLength) {
                chunked = false
            } else if fields.contains(.transferEncoding) {
                chunked = true
            } else if exchange.isHTTP10 {
                // HTTP/1.0 has no chunked coding: the body ends with the connection.
                chunked = false
                if hasBody { closeAfterResponse = true }
            } else {
                chunked = code != 204 && code != 304
            }
            framing = !hasBody ? .none : chunked ? .chunked : .identity
            let addChunked = chunked && !fields.contains(.transferEncoding)
            Self.writeHead(response, addChunked: addChunked, into: &out)
            context.write(wrapOutboundOut(out), promise: promise)
        case .body(let body):
            writeBody(body, context: context, flush: false, promise: promise)
        case .end(let trailers):
            var out = context.channel.allocator.buffer(capacity: 5)
            if case .chunked = framing {
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
            var framed = context.channel.allocator.buffer(capacity: body.readableBytes + 20)
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
        let closing = closeAfterResponse || exchange?.keepAlive == false || (closeWhenAnswered && exchanges.isEmpty)
        guard closing else {
            context.write(wrapOutboundOut(last), promise: promise)
            // Bytes of the next request may already be here, read while this response was made.
            if exchanges.isEmpty && parser.isInHead { startHeadDeadline() }
            return
        }
        // Half-close once the response is out, so the client reads all of it; then close for good after
        // the linger time, whatever the client keeps sending.
        discarding = true
        exchanges = []
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

    /// Status line, fields and the blank line. Swift HTTP Types has checked every name and value.
    static func writeHead(_ response: HTTPResponse, addChunked: Bool, into buffer: inout ByteBuffer) {
        let code = response.status.code
        // A known code gets its standard reason, as NIO's encoder wrote it.
        let reason = HTTPResponseStatus(statusCode: code, reasonPhrase: response.status.reasonPhrase).reasonPhrase
        let chunked: StaticString = "transfer-encoding: chunked\r\n"
        var length = "HTTP/1.1 200 \r\n".utf8.count + reason.utf8.count + 2
        for field in response.headerFields { length += field.name.rawName.utf8.count + 2 + field.value.utf8.count + 2 }
        if addChunked { length += chunked.utf8CodeUnitCount }
        buffer.writeHead(length: length) { out in
            out.put("HTTP/1.1 ")
            out.put(UInt8(ascii: "0") + UInt8(code / 100 % 10))
            out.put(UInt8(ascii: "0") + UInt8(code / 10 % 10))
            out.put(UInt8(ascii: "0") + UInt8(code % 10))
            out.put(UInt8(ascii: " "))
            out.put(reason)
            out.put("\r\n")
            for field in response.headerFields {
                out.put(field.name.rawName)
                out.put(": ")
                out.put(field.value)
                out.put("\r\n")
            }
            if addChunked { out.put(chunked) }
            out.put("\r\n")
        }
    }

    /// One chunk of chunked coding: its size in hex, CRLF, the bytes, CRLF; nothing for an empty one,
    /// which would end the body.
    static func writeChunk(_ chunk: ByteBuffer, into buffer: inout ByteBuffer) {
        let size = chunk.readableBytes
        guard size > 0 else { return }
        let digits = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4
        for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
            let digit = UInt8((size >> shift) & 0xF)
            buffer.writeInteger(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") - 10 + digit)
        }
        buffer.writeStaticString("\r\n")
        buffer.writeImmutableBuffer(chunk)
        buffer.writeStaticString("\r\n")
    }

    private static func writeField(_ field: HTTPField, into out: inout ByteBuffer) {
        out.writeString(field.name.rawName)
        out.writeStaticString(": ")
        out.writeString(field.value)
        out.writeStaticString("\r\n")
    }

    // MARK: Connection

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            stalledSince = nil
        } else {
            let now = NIODeadline.now()
            stalledSince = now
            checks?.arm(at: now + limits.idleTimeout)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        watch.connectionClosed()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Shutting down: an idle connection closes now, a busy one after its response.
            if exchanges.isEmpty {
                context.close(promise: nil)
            } else {
                discarding = true
                closeWhenAnswered = true
            }
            return
        }
        // The client closed its side (FIN). A client that still wants its answer does not do that, so
        // the request in progress is treated as abandoned, as a reverse proxy does (nginx's 499).
        if let event = event as? ChannelEvent, event == .inputClosed {
            watch.connectionClosed()
            // A body cut off here is an error to its reader, not an end.
            if readingBody { context.fireErrorCaught(HTTPParserError.invalidEOFState) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Closes the connection; a body being read sees `error` rather than an end.
    private func abort(context: ChannelHandlerContext, _ error: any Error) {
        if readingBody { context.fireErrorCaught(error) }
        context.close(promise: nil)
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
