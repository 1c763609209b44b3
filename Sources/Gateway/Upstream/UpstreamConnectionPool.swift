import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// Keep-alive connections to one upstream, kept per event loop: a request uses a connection on its
/// client's loop, so the upstream's reads, the meter and the client's writes run on one thread.
final class UpstreamConnectionPool: Sendable {
    let target: UpstreamTarget
    private let tls: NIOSSLContext?
    private let connectTimeout: TimeAmount
    private let idle = Mutex<[ObjectIdentifier: [UpstreamConnectionHandler]]>([:])
    /// Idle connections kept per loop; more close when their exchange ends.
    /// As many as a burst of concurrent streams leaves behind: the next burst then finds them open
    /// instead of paying a connect (and a TLS handshake) per stream.
    static let maxIdlePerLoop = 1024
    /// How long an unused connection stays open; shorter than common upstream keep-alive timeouts,
    /// so the gateway, not the upstream, usually closes it.
    static let keepAlive = TimeAmount.seconds(50)

    /// The target's address when its host is an IP literal: connecting to it needs no resolver (which
    /// runs getaddrinfo on another thread for every new connection).
    private let literalAddress: SocketAddress?

    init(target: UpstreamTarget, connectTimeout: TimeAmount, caFile: String?) throws {
        self.target = target
        literalAddress = target.serverName == nil ? try? SocketAddress(ipAddress: target.host, port: target.port) : nil
        self.connectTimeout = connectTimeout
        if target.tls {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.applicationProtocols = ["http/1.1"]
            if let caFile { configuration.additionalTrustRoots = [.file(caFile)] }
            tls = try NIOSSLContext(configuration: configuration)
        } else {
            tls = nil
        }
    }

    /// Runs `exchange` on an idle connection of `loop`, or a new one. A reused connection that turns out
    /// closed before any answer is retried once on a new connection.
    func run(
        _ exchange: UpstreamExchange, head: HTTPRequestHead, body: ByteBuffer, idleTimeout: TimeAmount
    ) {
        let loop = exchange.eventLoop
        guard loop.inEventLoop else {
            loop.execute { self.run(exchange, head: head, body: body, idleTimeout: idleTimeout) }
            return
        }
        let key = ObjectIdentifier(loop)
        while let reused = idle.withLock({ $0[key]?.popLast() }) {
            guard reused.isReusable else { continue }
            reused.start(exchange, head: head, body: body, idleTimeout: idleTimeout) { [self] in
                connect(exchange, head: head, body: body, idleTimeout: idleTimeout)
            }
            return
        }
        connect(exchange, head: head, body: body, idleTimeout: idleTimeout)
    }

    private func connect(
        _ exchange: UpstreamExchange, head: HTTPRequestHead, body: ByteBuffer, idleTimeout: TimeAmount
    ) {
        exchange.armFirstByteTimer()
        let handler = UpstreamConnectionHandler(pool: self, eventLoop: exchange.eventLoop)
        let tls = self.tls
        let target = self.target
        let bootstrap = ClientBootstrap(group: exchange.eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // Each channel keeps its last receive buffer; a streamed event is a few hundred bytes, and the
            // buffer grows when reads fill it (as on client connections).
            .channelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)
            )
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    if let tls {
                        try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: target.serverName))
                    }
                    // The handler writes requests and frames responses itself: a read of the response
                    // passes through no other stage.
                    try pipeline.addHandler(handler)
                }
            }
        let connected: EventLoopFuture<any Channel>
        if let literalAddress {
            connected = bootstrap.connect(to: literalAddress)
        } else {
            connected = bootstrap.connect(host: target.host, port: target.port)
        }
        connected.whenComplete { result in
            switch result {
            case .success(let channel):
                if exchange.isEnded {
                    channel.close(promise: nil)  // cancelled while connecting
                } else {
                    handler.start(exchange, head: head, body: body, idleTimeout: idleTimeout, retry: nil)
                }
            case .failure(let error):
                exchange.eventLoop.execute { exchange.fail(error) }
            }
        }
    }

    func release(_ handler: UpstreamConnectionHandler, on loop: any EventLoop, keepAlive hint: TimeAmount?) {
        // A second short of the upstream's own limit, so the gateway closes first.
        let keepAlive = hint.map { min(Self.keepAlive, $0 - .seconds(1)) } ?? Self.keepAlive
        guard keepAlive > .zero else {
            handler.closeIdle()
            return
        }
        let kept = idle.withLock { idle -> Bool in
            // Appended in place: a copy of a list of a thousand would retain and release each handler.
            guard idle[ObjectIdentifier(loop)]?.count ?? 0 < Self.maxIdlePerLoop else { return false }
            idle[ObjectIdentifier(loop), default: []].append(handler)
            return true
        }
        if kept { handler.parked(for: keepAlive) } else { handler.closeIdle() }
    }

    func forget(_ handler: UpstreamConnectionHandler, on loop: any EventLoop) {
        idle.withLock { idle in
            idle[ObjectIdentifier(loop)]?.removeAll { $0 === handler }
        }
    }

    /// Closes the idle connections (at shutdown).
    func closeIdle() {
        let all = idle.withLock { idle in
            defer { idle = [:] }
            return idle.values.flatMap { $0 }
        }
        for handler in all { handler.closeIdle() }
    }
}
