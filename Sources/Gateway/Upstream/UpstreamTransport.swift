import HTTPTypes
import Metering
import NIOCore

/// How a request reaches a provider of one kind: over HTTP (``UpstreamClients``), or in-process (the
/// mock provider, in its own target). The forward stage sees only this protocol.
public protocol UpstreamTransport: Sendable {
    /// Sends the request and returns once the response head is in. `cancellation` is how the transport
    /// stops its work if the client leaves first.
    func send(_ request: UpstreamRequest, cancellation: UpstreamCancellation) async throws(UpstreamFailure)
        -> UpstreamResponse
}

/// What the forward stage hands a transport.
public struct UpstreamRequest: Sendable {
    public var provider: ProviderConfig
    public var endpoint: APIEndpoint
    /// The parsed request as forwarded: `includeUsage` and the output limit as the gateway set them.
    public var parsed: ParsedRequest
    /// The body to send, with the upstream's model name and the gateway's edits.
    public var body: [UInt8]
    public var clientHeaders: HTTPFields
    public var requestID: String
    /// The client connection's event loop. An HTTP transport reads the upstream on it, so that the
    /// relay can pass each chunk to the client without leaving the loop.
    public var eventLoop: (any EventLoop)?
    /// The provider key for this attempt (from the provider's pool) and its configured name.
    public var apiKey: String?
    public var keyID: String?
}

/// Where a transport registers what stops its work when the client goes away.
public struct UpstreamCancellation: Sendable {
    let register: @Sendable (@escaping @Sendable () -> Void) -> Void

    /// Runs `stop` when the client leaves (at once if it already has).
    public func onCancel(_ stop: @escaping @Sendable () -> Void) { register(stop) }
}

/// An upstream's answer, whichever transport produced it.
public struct UpstreamResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var contentLength: Int?
    public var body: any UpstreamBodySource
    /// Credentials the gateway sent for this request; an error body that echoes one is redacted.
    public var secrets: [String]

    public init(
        status: Int, headers: [(String, String)], contentLength: Int?, body: any UpstreamBodySource,
        secrets: [String] = []
    ) {
        self.status = status
        self.headers = headers
        self.contentLength = contentLength
        self.body = body
        self.secrets = secrets
    }
}

/// An upstream body, chunk by chunk. Read by one task at a time (the handler, then the response
/// writer, strictly in turn); `abandon` may come from any thread.
public protocol UpstreamBodySource: Sendable {
    /// Everything received since the last call; nil at a clean end; throws where the body broke off, or
    /// once abandoned.
    func next() async throws -> ByteBuffer?
    /// The consumer is gone: stop the upstream work and make a pending or later `next` throw.
    func abandon()
    /// Hands the rest of the body to `sink` on `sink.eventLoop`, chunk by chunk as it arrives, instead
    /// of through `next`. Returns false if this source cannot (the caller then reads with `next`).
    func push(to sink: any UpstreamBodySink) -> Bool
}

extension UpstreamBodySource {
    public func push(to sink: any UpstreamBodySink) -> Bool { false }
}

/// Takes an upstream body where it arrives, on `eventLoop`, with no task switch per chunk.
public protocol UpstreamBodySink: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    /// Attached, on `eventLoop`, before the first chunk; `chunkFollows` when one read before is passed
    /// on at once.
    func start(chunkFollows: Bool)
    /// One chunk, on `eventLoop`. A returned future holds the next chunk back until it completes.
    func receive(_ chunk: ByteBuffer) -> EventLoopFuture<Void>?
    /// The body ended (cleanly, broken off, or abandoned). Called once; later calls are ignored.
    func end(_ result: Result<Void, any Error>)
}

extension UpstreamBodySource {
    /// Reads at most `limit` bytes and drops the rest (upstream error bodies, which are small).
    func collect(upTo limit: Int) async -> ByteBuffer {
        var all = ByteBuffer()
        do {
            while var chunk = try await next() {
                if all.readableBytes < limit { all.writeBuffer(&chunk) }
            }
        } catch {}
        return all
    }
}
