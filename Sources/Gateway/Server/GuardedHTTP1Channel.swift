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
/// writes HTTP/1.1 with the connection guards, and Hummingbird's `NIOAsyncChannel` and request loop
/// take the parts to its router.
struct GuardedHTTP1Channel: ServerChildChannel, HTTPChannelHandler {
    struct Value: ServerChildChannelValue {
        let asyncChannel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>
        let watch: ConnectionWatch
        var channel: any Channel { asyncChannel.channel }
    }

    let responder: HTTPChannelHandler.Responder
    let limits: ConnectionLimits

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits) {
        self.responder = responder
        self.limits = limits
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let limits = limits
        return channel.eventLoop.makeCompletedFuture {
            let watch = ConnectionWatch(channel: channel)
            // A connection keeps its last receive buffer for the next read; NIO starts at 2 KiB. Requests
            // of a few hundred bytes are the common case, and the buffer grows when reads fill it.
            try channel.syncOptions?.setOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(watch: watch, limits: limits))
            let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
            return Value(asyncChannel: asyncChannel, watch: watch)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await ConnectionWatch.$current.withValue(value.watch) {
            await handleHTTP(asyncChannel: value.asyncChannel, logger: logger)
        }
    }
}
