import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import Synchronization

/// The forward → meter → settle → record tail of the pipeline: sends the upstream's answer to the client
/// as it arrives, meters every byte, and makes the request's billing record durable before the last
/// byte leaves.
///
/// Success and client errors (4xx) pass through byte for byte (less any usage the gateway asked for on
/// the client's behalf); an upstream 5xx becomes a 502 in the client's format. The last bytes are held
/// back until the record is committed: for an event stream, from its end marker on; for a JSON body,
/// the latest chunk (a client cannot use half a JSON document anyway). If the upstream breaks after the
/// headers went out, the client gets every byte received and then a connection closed without a clean
/// end, so it sees a truncated response rather than a false success. If the client goes away, the
/// upstream request is cancelled and the record says so.
struct ResponseRelay: Sendable {
    let metrics: GatewayMetrics

    /// What the meter needs that the upstream response does not say.
    struct MeterSettings: Sendable {
        var endpoint: APIEndpoint
        var encoding: TokenEncoding
        /// The gateway added `stream_options.include_usage`; strip what the client did not ask for.
        var injectedUsage: Bool
        /// The provider's idle read timeout: a body that breaks off this long after its last byte fell
        /// silent rather than being cut.
        var idleTimeout: Duration = .seconds(60)
    }

    fileprivate struct ClientGone: Error {}

    func relay(
        _ upstream: UpstreamResponse, owner: SettlementOwner, metering: MeterSettings, dialect: APIDialect,
        client: (any Channel)?, extraHeaders: HTTPFields = [:]
    ) async throws(GatewayError) -> Response {
        let draft = owner.draft
        let reader = upstream.body
        owner.onClientGone { reader.abandon() }
        let status = upstream.status
        // The operator's key was refused, or the provider failed: the tenant gets a 502 of the gateway's
        // own, never the provider's words about its credentials.
        if status >= 500 || status == 401 || status == 403 {
            let body = await reader.collect(upTo: 16 << 10)
            let authFailed = status < 500
            metrics.upstreamError(provider: draft.provider, kind: authFailed ? "auth" : "status_\(status)")
            await owner.finishBestEffort(
                draft.finalRecord(
                    status: .upstreamError, httpStatus: 502, upstreamStatus: status,
                    error: authFailed ? "provider_auth_failed" : "upstream_status_\(status)", meter: nil,
                    endedAt: Date(), firstByteAt: nil))
            if authFailed { throw GatewayError.providerAuthFailed(provider: draft.provider).recorded() }
            throw GatewayError.upstreamStatus(
                provider: draft.provider, status: status,
                detail: Self.upstreamMessage(body).map { CredentialFilter.redact($0, secrets: upstream.secrets) }
            ).recorded()
        }
        var headers = HTTPFields()
        for (name, value) in upstream.headers {
            if let n = HTTPField.Name(name) { headers.append(HTTPField(name: n, value: value)) }
        }
        let success = (200..<300).contains(status)
        let isEventStream =
            success && (headers.combined(.contentType)?.lowercased().hasPrefix("text/event-stream") ?? false)
        headers[.requestID] = draft.requestID
        headers.append(contentsOf: extraHeaders)
        let strip = isEventStream && metering.injectedUsage
        var meter = ResponseMeter(
            endpoint: metering.endpoint, streaming: isEventStream, encoding: metering.encoding,
            stripInjectedUsage: strip)
        let metrics = metrics

        // A JSON body that ends within `coalesceLimit` bytes is metered and recorded before anything is
        // sent, then goes out with its head in one write. A client cannot use part of a JSON document,
        // so it loses nothing, and the response costs one socket write instead of two. A longer body, or
        // one that breaks off, streams as below, starting with the chunks already read. An error body
        // (4xx) is always read whole, up to the limit, so that it can be checked for credentials.
        var ahead: [ByteBuffer] = []
        var broken: (any Error)?
        var firstChunkAt: Date?  // when the upstream's first byte came, not when it was sent on
        if !isEventStream {
            var size = 0
            do {
                while size <= Self.coalesceLimit || !success {
                    guard let chunk = try await reader.next() else {
                        return try await Self.whole(
                            ahead, firstByteAt: firstChunkAt, meter: &meter, owner: owner, status: status,
                            headers: headers, secrets: upstream.secrets)
                    }
                    if firstChunkAt == nil && chunk.readableBytes > 0 { firstChunkAt = Date() }
                    size += chunk.readableBytes
                    if success || size <= Self.coalesceLimit { ahead.append(chunk) }
                }
            } catch {
                broken = error
            }
            if owner.isClientGone {
                // The client left while the answer was being read: nothing reached it.
                for chunk in ahead { _ = Self.feed(chunk, to: &meter) }
                _ = meter.finish()
                await owner.finishBestEffort(
                    owner.clientGoneRecord(upstreamStatus: status, meter: meter.usage, firstByteAt: firstChunkAt))
                throw GatewayError.clientGone.recorded()
            }
            if !success {
                // An error body that broke off: what arrived goes out, checked like a whole one.
                return try await Self.whole(
                    ahead, firstByteAt: firstChunkAt, meter: &meter, owner: owner, status: status, headers: headers,
                    secrets: upstream.secrets)
            }
        }

        let readAhead = ahead
        let breakAfterReadAhead = broken
        let unfedMeter = meter
        let readAheadStartedAt = firstChunkAt
        owner.responding(upstreamStatus: status, meter: unfedMeter.usage)
        let contentLength = strip ? nil : upstream.contentLength
        let responseBody = ResponseBody(contentLength: contentLength) { writer in
            guard owner.startRelaying() else { throw CancellationError() }
            var relay = RelayState(meter: unfedMeter, isEventStream: isEventStream, firstByteAt: readAheadStartedAt)
            var ending: Result<Void, any Error>
            if breakAfterReadAhead == nil, let client,
                case let sink = ChannelRelaySink(client: client, readAhead: readAhead, state: relay),
                reader.push(to: sink)
            {
                // Each chunk goes from the upstream's read to the client's socket on the event loop,
                // metered on the way; this task only waits for the end.
                ending = await withTaskCancellationHandler {
                    await sink.ended()
                } onCancel: {
                    reader.abandon()
                }
                relay = sink.state
            } else {
                // An empty write sends the head now, so the client sees the answer start; a client already
                // gone is recorded as the pull would record it.
                var headSent = true
                if readAhead.isEmpty {
                    do { try await writer.write(ByteBuffer()) } catch { headSent = false }
                }
                if headSent {
                    ending = await Self.pull(
                        reader, readAhead: readAhead, breakAfter: breakAfterReadAhead, relay: &relay
                    ) {
                        try await writer.write($0)
                    }
                } else {
                    ending = .failure(ClientGone())
                }
            }
            func finalRecord(_ outcome: BillingRecord.Status, error: String?) -> BillingRecord {
                relay.held.writeBytes(relay.meter.finish())
                return draft.finalRecord(
                    status: outcome, httpStatus: status, upstreamStatus: status, error: error,
                    meter: relay.meter.usage, endedAt: Date(), firstByteAt: relay.firstByteAt)
            }
            if case .failure(let error) = ending {
                if error is ClientGone || owner.isClientGone || Task.isCancelled {
                    reader.abandon()
                    await owner.finishBestEffort(finalRecord(.clientDisconnected, error: "client_disconnected"))
                    throw CancellationError()
                }
                let timedOut =
                    UpstreamClients.isTimeout(error)
                    || ContinuousClock.now - relay.lastChunkAt >= metering.idleTimeout * 0.9
                metrics.upstreamError(provider: draft.provider, kind: timedOut ? "idle_timeout" : "cut")
                await owner.finishBestEffort(
                    timedOut
                        ? finalRecord(.upstreamTimeout, error: "upstream_idle_timeout")
                        : finalRecord(.upstreamCut, error: "upstream_cut"))
                // Every byte received reaches the client, then the connection closes without a clean end.
                if relay.held.readableBytes > 0 { try? await writer.write(relay.held) }
                throw error
            }
            let record = finalRecord(.completed, error: nil)
            try await owner.finish(record)
            if relay.held.readableBytes > 0 { try await writer.write(relay.held) }
            try await writer.finish(nil)
        }
        return Response(status: .init(code: status), headers: headers, body: responseBody)
    }

    /// The largest JSON body sent in one piece after it has been recorded.
    static let coalesceLimit = 64 << 10

    /// The relay through `next()`, for a source that cannot push (the in-process mock provider) or a
    /// client without a channel: returns how the body ended.
    private static func pull(
        _ reader: any UpstreamBodySource, readAhead: [ByteBuffer], breakAfter: (any Error)?, relay: inout RelayState,
        send: (ByteBuffer) async throws -> Void
    ) async -> Result<Void, any Error> {
        func forward(_ chunk: ByteBuffer) async throws {
            guard let out = relay.take(chunk) else { return }
            do {
                try await send(out)
            } catch {
                throw ClientGone()
            }
        }
        do {
            for chunk in readAhead { try await forward(chunk) }
            if let breakAfter { throw breakAfter }
            while let chunk = try await reader.next() { try await forward(chunk) }
            return .success(())
        } catch {
            return .failure(error)
        }
    }

    /// A chunk through the meter: what goes to the client in its place.
    fileprivate static func feed(_ chunk: ByteBuffer, to meter: inout ResponseMeter) -> ByteBuffer {
        switch meter.feed(chunk.readableBytesView) {
        case .unchanged: chunk
        case .replaced(let bytes): ByteBuffer(bytes: bytes)
        }
    }

    /// A complete JSON body: meter, settle and record it, then answer with head and body together. If
    /// the record cannot be stored the client gets an error, never the answer without its record. An
    /// error body has any credential the upstream echoed taken out first.
    private static func whole(
        _ chunks: [ByteBuffer], firstByteAt: Date?, meter: inout ResponseMeter, owner: SettlementOwner, status: Int,
        headers: HTTPFields, secrets: [String]
    ) async throws(GatewayError) -> Response {
        var body = ByteBuffer()
        for chunk in chunks {
            var out = feed(chunk, to: &meter)
            body.writeBuffer(&out)
        }
        body.writeBytes(meter.finish())
        let success = (200..<300).contains(status)
        if !success, let redacted = CredentialFilter.redacting(Array(body.readableBytesView), secrets: secrets) {
            body = ByteBuffer(bytes: redacted)
        }
        let record = owner.draft.finalRecord(
            status: success ? .completed : .upstreamError, httpStatus: status, upstreamStatus: status,
            error: success ? nil : "upstream_status_\(status)", meter: meter.usage, endedAt: Date(),
            firstByteAt: firstByteAt)
        do {
            try await owner.finish(record)
        } catch {
            throw GatewayError.recordNotStored.recorded()
        }
        var headers = headers
        headers[.contentLength] = String(body.readableBytes)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: body))
    }

    /// The human message inside an upstream error body, in either provider's format.
    static func upstreamMessage(_ body: ByteBuffer) -> String? {
        guard let json = try? JSONReader.parse(Array(body.readableBytesView)) else { return nil }
        return json["error"]?["message"]?.stringValue
    }
}

/// A response body on its way through the meter: what has been held back, and when bytes came.
struct RelayState: Sendable {
    var meter: ResponseMeter
    let isEventStream: Bool
    /// Bytes that wait for the record: an event stream's end marker and what follows it, or a JSON
    /// body's latest chunk (a client cannot use half a JSON document anyway).
    var held = ByteBuffer()
    var firstByteAt: Date?
    var lastChunkAt = ContinuousClock.now

    init(meter: ResponseMeter, isEventStream: Bool, firstByteAt: Date?) {
        self.meter = meter
        self.isEventStream = isEventStream
        self.firstByteAt = firstByteAt
    }

    /// An upstream chunk: meters it and returns what may go to the client now.
    mutating func take(_ chunk: ByteBuffer) -> ByteBuffer? {
        lastChunkAt = .now
        var out = ResponseRelay.feed(chunk, to: &meter)
        if firstByteAt == nil && out.readableBytes > 0 { firstByteAt = Date() }
        if !isEventStream {
            defer { held = out }
            return held.readableBytes > 0 ? held : nil
        }
        if meter.endReached || held.readableBytes > 0 {
            held.writeBuffer(&out)
            return nil
        }
        return out.readableBytes > 0 ? out : nil
    }
}

/// Relays an upstream body to the client's channel from the event loop both live on.
///
/// `state` belongs to the event loop until `ended()` returns; the task reads it only after that.
final class ChannelRelaySink: UpstreamBodySink, @unchecked Sendable {
    let client: any Channel
    var eventLoop: any EventLoop { client.eventLoop }
    private(set) var state: RelayState
    private var readAhead: [ByteBuffer]
    private let done: EventLoopPromise<Void>
    private let isDone = Atomic(false)
    /// The client connection's HTTP/1 handler, found on the first write: it frames each chunk and writes
    /// it below every other handler.
    private var connection: ClientConnectionHandler?
    private var lookedForConnection = false
    private var headSent = false

    init(client: any Channel, readAhead: [ByteBuffer], state: RelayState) {
        self.client = client
        self.readAhead = readAhead
        self.state = state
        self.done = client.eventLoop.makePromise()
    }

    func start(chunkFollows: Bool) {
        // Chunks read before the response head went out go first, in order. The head waits for the
        // body's first write; with none yet, it goes now, so the client sees the answer start.
        for early in readAhead {
            if let out = state.take(early) { write(out, promise: nil) }
        }
        readAhead = []
        if !chunkFollows { flushHead() }
    }

    private func findConnection() -> ClientConnectionHandler? {
        if !lookedForConnection {
            lookedForConnection = true
            connection = try? client.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
        }
        return connection
    }

    /// Sends the response head if no chunk has taken it yet.
    private func flushHead() {
        guard !headSent else { return }
        headSent = true
        client.flush()
    }

    func receive(_ chunk: ByteBuffer) -> EventLoopFuture<Void>? {
        guard let out = state.take(chunk) else {
            flushHead()
            return nil
        }
        // While the client's socket keeps up, nothing waits; once it does not, the next upstream read
        // waits for this write. A failed write means the client is gone, which its connection reports.
        guard !(findConnection()?.isWritable ?? client.isWritable) else {
            write(out, promise: nil)
            return nil
        }
        let written = client.eventLoop.makePromise(of: Void.self)
        write(out, promise: written)
        return written.futureResult
    }

    /// Writes a body chunk through the connection's handler, which frames it: passing each event
    /// through the pipeline above it (the async channel's writer, the HTTP types) cost more than
    /// metering it.
    private func write(_ out: ByteBuffer, promise: EventLoopPromise<Void>?) {
        headSent = true
        guard let connection = findConnection() else {
            client.writeAndFlush(HTTPResponsePart.body(out), promise: promise)
            return
        }
        connection.relayBody(out, promise: promise)
    }

    func end(_ result: Result<Void, any Error>) {
        guard isDone.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        done.completeWith(result)
    }

    deinit {
        // A source that could not push never attached this sink.
        end(.failure(CancellationError()))
    }

    /// How the body ended, once it has.
    func ended() async -> Result<Void, any Error> {
        do {
            try await done.futureResult.get()
            return .success(())
        } catch {
            return .failure(error)
        }
    }
}
