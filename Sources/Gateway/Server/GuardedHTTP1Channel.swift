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
    /// An open connection with no request in progress, a request body that stops arriving, or a client
    /// that takes none of its response, is closed after this long.
    public var idleTimeout: TimeAmount
    /// A response sent with `Connection: close` half-closes the connection; whatever the client still
    /// sends is read and dropped for at most this long before the connection closes.
    public var lingerTimeout: TimeAmount = .seconds(2)

    public init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }
}

/// The gateway's HTTP/1 connections on Hummingbird's server: ``ClientConnectionHandler`` reads and
/// writes HTTP/1.1 with the connection guards, and the connection's task takes its requests one at a
/// time to the responder and writes their responses back through it.
///
/// Hummingbird's own request loop sits on `NIOAsyncChannel`, whose streams (a producer, a writer, their
/// state machines and generic metadata) were a large share of a short request's cost and of a new
/// connection's (`Benchmarks/NOTES.md`).
struct GuardedHTTP1Channel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let connection: ClientConnection
        let watch: ConnectionWatch
    }

    let respond: ChildTaskResponder
    let limits: ConnectionLimits
    let logger: Logger

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = limits
        return channel.eventLoop.makeCompletedFuture {
            let watch = ConnectionWatch(channel: channel)
            // A connection keeps its last receive buffer for the next read; NIO starts at 2 KiB. Requests
            // of a few hundred bytes are the common case, and the buffer grows when reads fill it.
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            let handler = ClientConnectionHandler(watch: watch, limits: limits)
            try channel.pipeline.syncOperations.addHandler(handler)
            return Value(
                channel: channel, connection: ClientConnection(handler: handler, loop: channel.eventLoop), watch: watch)
        }
    }

    func handle(value: Value, logger: Logger) async {
        let connection = value.connection
        let channel = value.channel
        await withTaskCancellationHandler {
            await ConnectionWatch.$current.withValue(value.watch) {
                while let request = await connection.nextRequest() {
                    let context = GatewayRequestContext(source: .init(channel: channel, logger: self.logger))
                    var response: Response
                    do {
                        response = try await respond.respond(to: request, context: context)
                    } catch is HTTPParserError {
                        // A body that could not be read (cut off, or not valid HTTP): nothing after it can be.
                        response = Response(status: .badRequest, headers: [.connection: "close"])
                    } catch {
                        // The router answers the errors it knows; anything else is the gateway's fault.
                        response = Response(status: .internalServerError)
                    }
                    response.headers[.date] = HTTPDate.now()
                    do {
                        try await connection.send(response)
                    } catch {
                        // The client is gone or the body broke off: the connection cannot carry another.
                        channel.close(promise: nil)
                        break
                    }
                }
            }
            try? await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// The connection's task's way to its ``ClientConnectionHandler``, which lives on the event loop.
///
/// The task runs on the connection's event loop nearly always (its jobs are queued on the loop that
/// resumes it), so each call is made in place; from another thread it hops.
struct ClientConnection: @unchecked Sendable {
    let handler: ClientConnectionHandler
    let loop: any EventLoop

    func nextRequest() async -> Request? {
        await withUnsafeContinuation { continuation in
            onLoop { handler.nextRequest(continuation) }
        }
    }

    /// Writes a response: its head, then its body through ``BodyWriter``.
    func send(_ response: Response) async throws {
        let head = response.head
        try await call { try handler.sendHead(head) }
        try await response.body.write(BodyWriter(connection: self))
    }

    struct BodyWriter: ResponseBodyWriter {
        let connection: ClientConnection

        mutating func write(_ buffer: ByteBuffer) async throws {
            let handler = connection.handler
            let writable = try await connection.call { try handler.sendBody(buffer) }
            if !writable { try await connection.waitWritable() }
        }

        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
            let handler = connection.handler
            let writable = try await connection.call { try handler.sendEnd(trailingHeaders) }
            if !writable { try await connection.waitWritable() }
        }
    }

    /// As NIO's async writer did: a client that takes nothing holds the task here, not memory, and
    /// no further request of its connection is answered meanwhile.
    func waitWritable() async throws {
        let handler = handler
        try await withUnsafeThrowingContinuation { continuation in
            onLoop { handler.whenWritable(continuation) }
        }
    }

    private func onLoop(_ body: @escaping () -> Void) {
        if loop.inEventLoop {
            body()
        } else {
            let body = UnsafeTransfer(body)
            loop.execute { body.wrappedValue() }
        }
    }

    private func call<T: Sendable>(_ body: @escaping () throws -> T) async throws -> T {
        if loop.inEventLoop { return try body() }
        let body = UnsafeTransfer(body)
        return try await loop.submit { try body.wrappedValue() }.get()
    }
}

/// Moves a value confined to one event loop across the hop to it.
private struct UnsafeTransfer<Value>: @unchecked Sendable {
    let wrappedValue: Value
    init(_ wrappedValue: Value) { self.wrappedValue = wrappedValue }
}
