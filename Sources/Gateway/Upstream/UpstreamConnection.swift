import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Where one provider's requests go, parsed once from its base URL.
struct UpstreamTarget: Sendable, Equatable {
    var host: String
    var port: Int
    var tls: Bool
    /// The base URL's path (`/v1`), which every endpoint path follows.
    var pathPrefix: String
    var hostHeader: String

    init?(baseURL: String) {
        guard let url = URLComponents(string: baseURL), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", var host = url.host, !host.isEmpty
        else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.host = host
        tls = scheme == "https"
        let defaultPort = tls ? 443 : 80
        port = url.port ?? defaultPort
        var path = url.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        pathPrefix = path
        let literal = host.contains(":") ? "[\(host)]" : host
        hostHeader = port == defaultPort ? literal : "\(literal):\(port)"
    }

    /// SNI carries names only; an address is checked against the certificate without it.
    var serverName: String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 { return nil }
        return host
    }
}

/// Why an exchange with an upstream failed, where NIO's own errors do not say it.
enum UpstreamConnectionError: Error, Equatable, CustomStringConvertible {
    case firstByteTimeout
    case idleReadTimeout
    /// The connection closed before the response ended.
    case closed
    /// A 1xx the gateway cannot relay (101 Switching Protocols).
    case unexpectedStatus(Int)

    var description: String {
        switch self {
        case .firstByteTimeout: "no response head within the first-byte timeout"
        case .idleReadTimeout: "the upstream fell silent for longer than its idle timeout"
        case .closed: "the upstream closed the connection before the response ended"
        case .unexpectedStatus(let code): "the upstream answered \(code), which the gateway does not relay"
        }
    }
}

/// One request and its response, from the first write to the end of the body (or a failure). Its state
/// lives on `eventLoop`, where the connection that carries it runs.
final class UpstreamExchange: @unchecked Sendable {
    let eventLoop: any EventLoop
    let head: EventLoopPromise<HTTPResponseHead>
    let body: UpstreamBody
    private var headSettled = false
    private var ended = false
    /// When the response head must have arrived, counted from the exchange's start.
    let firstByteDeadline: NIODeadline
    private var firstByteTimer: Scheduled<Void>?
    /// The connection carrying it, while it does.
    fileprivate var connection: UpstreamConnectionHandler?

    init(eventLoop: any EventLoop, firstByteTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        firstByteDeadline = .now() + firstByteTimeout
        head = eventLoop.makePromise()
        body = UpstreamBody(eventLoop: eventLoop)
        body.onAbandon { [self] in cancel() }
    }

    /// Bounds the wait for the head when the exchange needs a new connection (from connecting until the
    /// head or a failure); on a reused connection, the connection's own checks hold it to its deadline.
    func armFirstByteTimer() {
        guard !ended, !headSettled, firstByteTimer == nil else { return }
        firstByteTimer = eventLoop.scheduleTask(deadline: firstByteDeadline) { [self] in
            // Only if the head is still missing: a head that arrived as the timer fired is a live stream.
            if !headSettled { fail(UpstreamConnectionError.firstByteTimeout) }
        }
    }

    /// Stops the exchange from any thread (the client left, or nobody reads the body).
    func cancel() {
        eventLoop.execute { [self] in fail(CancellationError()) }
    }

    var isEnded: Bool { ended }

    fileprivate func receivedHead(_ response: HTTPResponseHead) {
        guard !headSettled else { return }
        headSettled = true
        firstByteTimer?.cancel()
        firstByteTimer = nil
        head.succeed(response)
    }

    fileprivate func finished() {
        ended = true
        connection = nil
        body.finish(.success(()))
    }

    /// Ends the exchange with `error` (once) and closes its connection, which cannot be reused
    /// mid-response.
    func fail(_ error: any Error) {
        guard !ended else { return }
        ended = true
        firstByteTimer?.cancel()
        firstByteTimer = nil
        if !headSettled {
            headSettled = true
            head.fail(error)
        }
        body.finish(.failure(error))
        let connection = self.connection
        self.connection = nil
        connection?.drop(self)
    }
}

/// One keep-alive HTTP/1.1 connection to an upstream, carrying one exchange at a time.
///
/// It holds the socket's reads back while the consumer of a body is behind (backpressure), times out
/// silences during an exchange, and goes back to its pool only after a response that leaves the
/// connection in a known state.
final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let pool: UpstreamConnectionPool
    /// The loop of the channel this handler serves, which its state belongs to.
    let eventLoop: any EventLoop
    private var context: ChannelHandlerContext?
    private var exchange: UpstreamExchange?
    private var parser = UpstreamResponseParser()
    /// Counts exchanges, so a late callback of an earlier one is ignored.
    private var generation = 0
    private var requestSent = false
    private var receivedAny = false
    /// When the current exchange's request went out on a reused connection.
    private var startedAt = NIODeadline.now()
    /// The upstream's `Keep-Alive: timeout=N`, if it sent one.
    private var keepAliveHint: TimeAmount?
    /// A retry on a fresh connection, for a reused one that the upstream closed before answering.
    private var retry: (() -> Void)?
    private var reads = ReadGate()
    private var idleTimeout = TimeAmount.seconds(60)
    private var lastRead = NIODeadline.now()
    private var headReceived = false
    /// In the pool: when the connection closes unless it is used again.
    private var parkedUntil: NIODeadline?
    /// Checks of the head's, a silence's and the pool's deadlines, never cancelled per request.
    private lazy var checks = LazyDeadlineCheck(loop: eventLoop) { [weak self] in self?.checkDeadlines() }

    init(pool: UpstreamConnectionPool, eventLoop: any EventLoop) {
        self.pool = pool
        self.eventLoop = eventLoop
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Idle, open, and not past its time in the pool (whose check may not have run yet).
    var isReusable: Bool {
        exchange == nil && context?.channel.isActive == true && parkedUntil.map { $0 > .now() } ?? true
    }

    /// Sends the request of `exchange`; its response goes to the exchange's head and body.
    func start(
        _ exchange: UpstreamExchange, head: HTTPRequestHead, body: ByteBuffer, idleTimeout: TimeAmount,
        retry: (() -> Void)?
    ) {
        if exchange.isEnded {
            // Cancelled before it started: the connection is still clean.
            if isReusable, let context { pool.release(self, on: context.eventLoop, keepAlive: keepAliveHint) }
            return
        }
        guard let context, context.channel.isActive else {
            if let retry { retry() } else { exchange.fail(UpstreamConnectionError.closed) }
            return
        }
        let request: ByteBuffer
        do {
            request = try UpstreamRequestWriter.encode(head, body: body, allocator: context.channel.allocator)
        } catch {
            // Nothing was sent: the connection is still clean.
            exchange.fail(error)
            if isReusable { pool.release(self, on: context.eventLoop, keepAlive: keepAliveHint) }
            return
        }
        parkedUntil = nil
        generation &+= 1
        self.exchange = exchange
        exchange.connection = self
        self.retry = retry
        self.idleTimeout = idleTimeout
        requestSent = false
        parser = UpstreamResponseParser()
        receivedAny = false
        headReceived = false
        keepAliveHint = nil
        startedAt = .now()
        checks.arm(at: nextDue)
        let current = generation
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(request), promise: sent)
        sent.futureResult.assumeIsolated().whenComplete { [self] result in
            guard current == generation else { return }
            switch result {
            case .success:
                requestSent = true
                if self.exchange == nil {
                    // The response ended before the request was written through (an early answer).
                    self.context?.close(promise: nil)
                }
            case .failure(let error):
                if let answering = self.exchange, parser.inputClosed() {
                    // An early answer whose body runs to the close: the upstream closed, which ends it.
                    ended(answering, reusable: false, context: context)
                } else {
                    failCurrent(error, retryable: true)
                }
            }
        }
    }

    /// The exchange gave up: the connection is in an unknown state mid-response, so it closes.
    fileprivate func drop(_ exchange: UpstreamExchange) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        retry = nil
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard exchange != nil else {
            // Nothing is asked of an idle connection: bytes on it mean it is out of step.
            context.close(promise: nil)
            return
        }
        lastRead = .now()
        receivedAny = true
        var buffer = unwrapInboundIn(data)
        do {
            while let exchange, let event = try parser.next(&buffer) {
                switch event {
                case .head(let head):
                    guard head.status.code >= 200 else {
                        // Interim 1xx answers are skipped by the parser; a switch of protocols is not
                        // ours to relay.
                        failCurrent(
                            UpstreamConnectionError.unexpectedStatus(Int(head.status.code)), retryable: false)
                        return
                    }
                    keepAliveHint = Self.keepAliveTimeout(head.headers)
                    // The first-byte timeout bounded the wait for the head; from here on, each silence is
                    // bounded.
                    headReceived = true
                    checks.arm(at: nextDue)
                    exchange.receivedHead(head)
                case .body(let part):
                    if let wait = exchange.body.append(part) {
                        reads.pause()
                        let current = generation
                        wait.hop(to: context.eventLoop).assumeIsolated().whenComplete { [self] _ in
                            if current == generation { reads.resume(self.context) }
                        }
                    }
                case .end:
                    // Bytes after the end are a second answer nobody asked for: the connection is out of
                    // step and is not reused.
                    ended(exchange, reusable: buffer.readableBytes == 0, context: context)
                    return
                }
            }
        } catch {
            failCurrent(error, retryable: false)
        }
    }

    private func ended(_ exchange: UpstreamExchange, reusable: Bool, context: ChannelHandlerContext) {
        self.exchange = nil
        retry = nil
        exchange.finished()
        reads.resume(context)
        if reusable && requestSent && parser.keepAlive {
            pool.release(self, on: context.eventLoop, keepAlive: keepAliveHint)
        } else {
            // Not reusable; an upstream that answered before reading the whole request may never read
            // the rest, so nothing waits for that write.
            context.close(promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        reads.read(context)
    }

    /// The next deadline of the connection's state: the head's, a silence's, or the pool's.
    private var nextDue: NIODeadline? {
        guard let exchange else { return parkedUntil }
        return headReceived ? lastRead + idleTimeout : exchange.firstByteDeadline
    }

    /// Acts on a deadline that has passed; returns the next one to check.
    private func checkDeadlines() -> NIODeadline? {
        let now = NIODeadline.now()
        if let exchange {
            if !headReceived {
                if exchange.firstByteDeadline <= now {
                    failCurrent(UpstreamConnectionError.firstByteTimeout, retryable: false)
                    return nil
                }
            } else {
                // While the client holds reads back, the silence is not the upstream's.
                if reads.paused { lastRead = now }
                if lastRead + idleTimeout <= now {
                    failCurrent(UpstreamConnectionError.idleReadTimeout, retryable: false)
                    return nil
                }
            }
        } else if let parkedUntil, parkedUntil <= now {
            self.parkedUntil = nil
            context?.close(promise: nil)
            return nil
        }
        return nextDue
    }

    /// `retryable`: the failure is the connection's (closed, reset), not the upstream's answer or
    /// silence.
    private func failCurrent(_ error: any Error, retryable: Bool) {
        guard let exchange else { return }
        if retryable, !receivedAny, let retry, NIODeadline.now() - startedAt < Self.staleWindow {
            // A reused connection the upstream closed as the request went out (the keep-alive race):
            // the request did not reach it. Later, a silent close may follow work already done upstream,
            // and sending again could run (and cost) the request twice.
            self.exchange = nil
            self.retry = nil
            exchange.connection = nil
            context?.close(promise: nil)
            retry()
            return
        }
        exchange.fail(error)
    }

    /// How soon after sending on a reused connection a close still counts as the keep-alive race.
    static let staleWindow = TimeAmount.milliseconds(250)

    /// The `timeout` of a `Keep-Alive` response header.
    static func keepAliveTimeout(_ headers: HTTPHeaders) -> TimeAmount? {
        guard let value = headers.first(name: "keep-alive") else { return nil }
        for part in value.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "timeout",
                let seconds = Int64(pair[1].trimmingCharacters(in: .whitespaces)), seconds >= 0
            else { continue }
            return .seconds(seconds)
        }
        return nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        checks.stop()
        if let exchange, parser.inputClosed() {
            // A body delimited by the close has ended.
            ended(exchange, reusable: false, context: context)
        } else if exchange != nil {
            failCurrent(UpstreamConnectionError.closed, retryable: true)
        } else {
            pool.forget(self, on: context.eventLoop)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer that closes without close_notify: whether the response was complete is decided
        // by the HTTP framing when the channel goes inactive.
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return }
        failCurrent(error, retryable: error is IOError)
        context.close(promise: nil)
    }

    /// In the pool: closed after `timeout` without use.
    func parked(for timeout: TimeAmount) {
        parkedUntil = .now() + timeout
        checks.arm(at: parkedUntil)
    }
}

extension UpstreamConnectionHandler {
    func closeIdle() {
        eventLoop.execute { [self] in
            if exchange == nil { context?.close(promise: nil) }
        }
    }
}
