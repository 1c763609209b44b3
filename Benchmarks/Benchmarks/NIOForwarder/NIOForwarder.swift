import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A measurement for issue #26's decision, not product code: `BareForwarder` with AsyncHTTPClient
/// replaced by the least an HTTP/1.1 client can be on NIO (keep-alive connections per event loop, one
/// exchange at a time on each, the answer buffered whole; no TLS, timeouts or redirects). The
/// difference between the two under `Benchmarks/callgrind.sh` (FLOOR_BIN) bounds what a client of our
/// own could save.
///
///   NIOForwarder PORT UPSTREAM_BASE_URL    (http://host:port[/prefix])
@main
struct NIOForwarder {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3, let port = Int(arguments[1]),
            let (host, upstreamPort, prefix) = parse(arguments[2])
        else {
            print("usage: NIOForwarder PORT http://HOST:PORT[/prefix]")
            return
        }
        NIOSingletons.groupLoopCountSuggestion = 1
        precondition(NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor())
        let group = MultiThreadedEventLoopGroup.singleton
        let pool = UpstreamPool(host: host, port: upstreamPort)
        let path = prefix + "/v1/chat/completions"

        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            head.headers.add(name: "host", value: "\(host):\(upstreamPort)")
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "authorization", value: "Bearer nio-forwarder")
            head.headers.add(name: "content-length", value: String(body.readableBytes))
            let (answerHead, answer) = try await pool.exchange(head, body, on: group.any()).get()
            var headers = HTTPFields()
            if let type = answerHead.headers.first(name: "content-type") { headers[.contentType] = type }
            return Response(
                status: .init(code: Int(answerHead.status.code)), headers: headers, body: .init(byteBuffer: answer))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil, backlog: 1024),
            eventLoopGroupProvider: .shared(group))
        try await app.runService()
    }

    static func parse(_ url: String) -> (String, Int, String)? {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        let prefix = String(rest.dropFirst(authority.count))
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { return nil }
        return (String(parts[0]), port, prefix)
    }
}

typealias Answer = (HTTPResponseHead, ByteBuffer)

/// Idle keep-alive connections, per event loop.
final class UpstreamPool: Sendable {
    let host: String
    let port: Int
    private let idle = Mutex<[ObjectIdentifier: [any Channel]]>([:])

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    func exchange(_ head: HTTPRequestHead, _ body: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<Answer> {
        let key = ObjectIdentifier(loop)
        let reused = idle.withLock { $0[key]?.popLast() }
        let channel: EventLoopFuture<any Channel>
        if let reused, reused.isActive {
            channel = loop.makeSucceededFuture(reused)
        } else {
            channel = ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(ExchangeHandler())
                    }
                }
                .connect(host: host, port: port)
        }
        return channel.flatMap { channel in
            let promise = channel.eventLoop.makePromise(of: Answer.self)
            channel.writeAndFlush(Exchange(head: head, body: body, promise: promise), promise: nil)
            return promise.futureResult.map { answer in
                self.idle.withLock { $0[key, default: []].append(channel) }
                return answer
            }
        }
    }
}

struct Exchange: @unchecked Sendable {
    var head: HTTPRequestHead
    var body: ByteBuffer
    var promise: EventLoopPromise<Answer>
}

/// One request out, its answer collected, then the next.
final class ExchangeHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Exchange
    typealias OutboundOut = HTTPClientRequestPart

    private var promise: EventLoopPromise<Answer>?
    private var head: HTTPResponseHead?
    private var body = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let exchange = unwrapOutboundIn(data)
        self.promise = exchange.promise
        context.write(wrapOutboundOut(.head(exchange.head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(exchange.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head, let promise else { return }
            self.promise = nil
            self.head = nil
            promise.succeed((head, body))
            body = ByteBuffer()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(ChannelError.ioOnClosedChannel)
        promise = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(error)
        promise = nil
        context.close(promise: nil)
    }
}
