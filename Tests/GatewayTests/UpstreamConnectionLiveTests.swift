import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import Gateway

/// A raw upstream on loopback that answers each request with the next scripted bytes, as a real (or
/// broken) provider would put them on the wire.
final class ScriptedUpstream: Sendable {
    struct Reply: Sendable {
        var bytes: [UInt8]
        var closeAfter = false
    }

    private let replies: Mutex<[Reply]>
    /// Every request received, as its bytes.
    let requests = Mutex<[[UInt8]]>([])
    /// When replies were written and connections closed, on the upstream's event loop.
    let times = Mutex<(answered: [NIODeadline], closed: [NIODeadline])>(([], []))
    private let accepted = Atomic<Int>(0)
    private let closed = Atomic<Int>(0)
    private let channel: Mutex<(any Channel)?> = Mutex(nil)

    init(_ replies: [Reply]) { self.replies = Mutex(replies) }

    var connections: Int { accepted.load(ordering: .relaxed) }
    /// Connections the gateway side has closed (or that ended otherwise).
    var closedConnections: Int { closed.load(ordering: .relaxed) }

    func start() async throws -> Int {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                self.accepted.add(1, ordering: .relaxed)
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(RequestHandler(upstream: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = server }
        return server.localAddress?.port ?? 0
    }

    func stop() async {
        try? await channel.withLock { $0 }?.close()
    }

    fileprivate func nextReply() -> Reply? {
        replies.withLock { $0.isEmpty ? nil : $0.removeFirst() }
    }

    /// Reads whole requests (head and Content-Length body) and writes one reply for each.
    private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let upstream: ScriptedUpstream
        var pending: [UInt8] = []

        init(upstream: ScriptedUpstream) { self.upstream = upstream }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            pending += unwrapInboundIn(data).readableBytesView
            while let request = Self.requestLength(pending) {
                upstream.requests.withLock { $0.append(Array(pending.prefix(request))) }
                pending.removeFirst(request)
                guard let reply = upstream.nextReply() else {
                    context.close(promise: nil)
                    return
                }
                // An empty reply is an upstream that never answers.
                if !reply.bytes.isEmpty {
                    context.writeAndFlush(NIOAny(ByteBuffer(bytes: reply.bytes)), promise: nil)
                    upstream.times.withLock { $0.answered.append(.now()) }
                }
                if reply.closeAfter { context.close(promise: nil) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            upstream.times.withLock { $0.closed.append(.now()) }
            upstream.closed.add(1, ordering: .relaxed)
            context.fireChannelInactive()
        }

        static func requestLength(_ bytes: [UInt8]) -> Int? {
            let text = String(decoding: bytes, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { return nil }
            let head = text[..<end.lowerBound].lowercased()
            let length =
                head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = text.utf8.distance(from: text.startIndex, to: end.upperBound) + length
            return bytes.count >= total ? total : nil
        }
    }
}

@Suite("Upstream connection, against a raw upstream")
struct UpstreamConnectionLiveTests {
    struct Answer {
        var status: Int
        var body: String
    }

    /// One exchange through the pool, on one loop so that the pool's idle connections are shared.
    static func open(
        _ pool: UpstreamConnectionPool, on loop: any EventLoop, extra: [(String, String)] = [],
        firstByte: TimeAmount = .seconds(5), idle: TimeAmount = .seconds(5)
    ) -> UpstreamExchange {
        let exchange = UpstreamExchange(eventLoop: loop, firstByteTimeout: firstByte)
        let headers = HTTPHeaders(
            [("host", pool.target.hostHeader), ("content-length", "2"), ("content-type", "application/json")] + extra)
        pool.run(
            exchange, head: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/x", headers: headers),
            body: ByteBuffer(string: "{}"), idleTimeout: idle)
        return exchange
    }

    static func exchange(_ pool: UpstreamConnectionPool, on loop: any EventLoop) async throws -> Answer {
        let exchange = open(pool, on: loop)
        let head = try await exchange.head.futureResult.get()
        var body: [UInt8] = []
        while let part = try await exchange.body.next() { body += part.readableBytesView }
        return Answer(status: Int(head.status.code), body: String(decoding: body, as: UTF8.self))
    }

    static func withUpstream(
        _ replies: [ScriptedUpstream.Reply],
        _ body: (UpstreamConnectionPool, any EventLoop, ScriptedUpstream) async throws -> Void
    ) async throws {
        let upstream = ScriptedUpstream(replies)
        let port = try await upstream.start()
        let pool = try UpstreamConnectionPool(
            target: UpstreamTarget(baseURL: "http://127.0.0.1:\(port)/v1")!, connectTimeout: .seconds(2),
            caFile: nil)
        do {
            try await body(pool, MultiThreadedEventLoopGroup.singleton.next(), upstream)
        } catch {
            pool.closeIdle()
            await upstream.stop()
            throw error
        }
        pool.closeIdle()
        await upstream.stop()
    }

    static func reply(_ text: String, closeAfter: Bool = false) -> ScriptedUpstream.Reply {
        .init(bytes: Array(text.utf8), closeAfter: closeAfter)
    }

    @Test("chunked, fixed-length and interim answers all run on one kept-alive connection")
    func keepAlive() async throws {
        try await Self.withUpstream([
            Self.reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
            Self.reply("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Slow Down\r\nContent-Length: 4\r\n\r\nwait"),
            Self.reply("HTTP/1.1 200 OK\nContent-Length: 3\n\nabc"),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.status == 200 && first.body == "hello")
            let second = try await Self.exchange(pool, on: loop)
            #expect(second.status == 429 && second.body == "wait")
            let third = try await Self.exchange(pool, on: loop)
            #expect(third.status == 200 && third.body == "abc")
            #expect(upstream.connections == 1)
        }
    }

    @Test("a body delimited by the close is delivered whole, and that connection is not reused")
    func closeDelimited() async throws {
        try await Self.withUpstream([
            Self.reply("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", closeAfter: true),
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "until the end")
            let second = try await Self.exchange(pool, on: loop)
            #expect(second.body == "ok")
            #expect(upstream.connections == 2)
        }
    }

    @Test("bytes after the end of an answer: the answer stands, the connection is closed, not reused")
    func bytesAfterEnd() async throws {
        try await Self.withUpstream([
            Self.reply(
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"),
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "ok")
            let second = try await Self.exchange(pool, on: loop)
            #expect(second.body == "fresh")
            #expect(upstream.connections == 2)
        }
    }

    @Test("ambiguous framing fails the exchange; a chunked body that breaks delivers what came before it")
    func malformed() async throws {
        try await Self.withUpstream([
            Self.reply(
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            Self.reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"),
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ]) { pool, loop, upstream in
            await #expect(throws: UpstreamResponseError.conflictingFraming) {
                _ = try await Self.exchange(pool, on: loop)
            }
            let exchange = Self.open(pool, on: loop)
            let head = try await exchange.head.futureResult.get()
            #expect(head.status == .ok)
            let before = try await exchange.body.next()
            #expect(before.map { String(buffer: $0) } == "abc")
            await #expect(throws: UpstreamResponseError.badChunk) { _ = try await exchange.body.next() }
            // Each broken connection was closed; the next request gets a new one and its answer.
            let after = try await Self.exchange(pool, on: loop)
            #expect(after.body == "ok")
            #expect(upstream.connections == 3)
        }
    }

    @Test("the request goes out as one well-formed message; a header that could split it is never sent")
    func requestBytes() async throws {
        try await Self.withUpstream([
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "ok")
            let expected =
                "POST /v1/x HTTP/1.1\r\nhost: \(pool.target.hostHeader)\r\ncontent-length: 2\r\n"
                + "content-type: application/json\r\n\r\n{}"
            #expect(upstream.requests.withLock { $0 } == [Array(expected.utf8)])
            for bad in [("x-evil", "a\r\nx-injected: 1"), ("x-nul", "a\u{0}b"), ("bad name", "v")] {
                let exchange = Self.open(pool, on: loop, extra: [bad])
                await #expect(throws: UpstreamRequestError(header: bad.0)) {
                    _ = try await exchange.head.futureResult.get()
                }
            }
            // Nothing of them reached the upstream, and the kept-alive connection still serves.
            let after = try await Self.exchange(pool, on: loop)
            #expect(after.body == "ok")
            #expect(upstream.requests.withLock { $0.count } == 2 && upstream.connections == 1)
        }
    }

    @Test(
        "on a kept-alive connection: a missing head and a silence mid-body time out, a parked one closes",
        .timeLimit(.minutes(1)))
    func timeouts() async throws {
        // Times are taken on the event loops (the upstream's and the exchange's), not in the test's task,
        // which the full suite's CPU-bound tests can hold off the cooperative pool for seconds.
        try await Self.withUpstream([
            // No Keep-Alive hint: the connection stays parked (50 s) however late this task runs next.
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Self.reply(""),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "ok")
            let silent = Self.open(pool, on: loop, firstByte: .milliseconds(300), idle: .seconds(5))
            let failedAt = silent.head.futureResult.map { _ in NIODeadline.distantFuture }
                .recover { _ in NIODeadline.now() }
            await #expect(throws: UpstreamConnectionError.firstByteTimeout) {
                _ = try await silent.head.futureResult.get()
            }
            let waited = try await failedAt.get() - silent.firstByteDeadline
            #expect(waited >= .zero && waited < .seconds(1), "\(waited)")
            #expect(upstream.connections == 1)
        }
        try await Self.withUpstream([
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Self.reply("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"),
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "ok")
            // The first byte may take 5 s; the silence after it only 300 ms, so the error says which ran out.
            let stalled = Self.open(pool, on: loop, firstByte: .seconds(5), idle: .milliseconds(300))
            let head = try await stalled.head.futureResult.get()
            #expect(head.status == .ok)
            let part = try await stalled.body.next()
            #expect(part.map { String(buffer: $0) } == "hi")
            await #expect(throws: UpstreamConnectionError.idleReadTimeout) { _ = try await stalled.body.next() }
            #expect(upstream.connections == 1)
        }
        try await Self.withUpstream([
            // The upstream keeps an idle connection 2 s: the pool closes it a second sooner.
            Self.reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=2\r\n\r\nok")
        ]) { pool, loop, upstream in
            let first = try await Self.exchange(pool, on: loop)
            #expect(first.body == "ok")
            var waited = 0
            while upstream.closedConnections == 0 && waited < 100 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            let times = upstream.times.withLock { $0 }
            #expect(times.closed.count == 1)
            if let answered = times.answered.first, let closed = times.closed.first {
                let parked = closed - answered
                #expect(parked >= .milliseconds(900) && parked < .seconds(2), "\(parked)")
            }
        }
    }
}
