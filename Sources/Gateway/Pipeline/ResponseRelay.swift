import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

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

    private struct ClientGone: Error {}

    func relay(
        _ upstream: UpstreamResponse, owner: SettlementOwner, metering: MeterSettings, dialect: APIDialect,
        extraHeaders: HTTPFields = [:]
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
            success && (headers[.contentType]?.lowercased().hasPrefix("text/event-stream") ?? false)
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
        owner.responding(disconnectRecord: owner.clientGoneRecord(upstreamStatus: status, meter: unfedMeter.usage))
        let responseBody = ResponseBody(contentLength: strip ? nil : upstream.contentLength) { writer in
            guard owner.startRelaying() else { throw CancellationError() }
            var meter = unfedMeter
            var held = ByteBuffer()
            var firstByteAt = readAheadStartedAt
            var lastChunkAt = ContinuousClock.now
            func send(_ buffer: ByteBuffer) async throws {
                do {
                    try await writer.write(buffer)
                } catch {
                    throw ClientGone()
                }
            }
            func finalRecord(_ outcome: BillingRecord.Status, error: String?) -> BillingRecord {
                held.writeBytes(meter.finish())
                return draft.finalRecord(
                    status: outcome, httpStatus: status, upstreamStatus: status, error: error, meter: meter.usage,
                    endedAt: Date(), firstByteAt: firstByteAt)
            }
            func forward(_ chunk: ByteBuffer) async throws {
                let out = Self.feed(chunk, to: &meter)
                if firstByteAt == nil && out.readableBytes > 0 { firstByteAt = Date() }
                if !isEventStream {
                    // JSON: hold the latest chunk; what came before it can go.
                    if held.readableBytes > 0 { try await send(held) }
                    held = out
                } else if meter.endReached || held.readableBytes > 0 {
                    var out = out
                    held.writeBuffer(&out)
                } else if out.readableBytes > 0 {
                    try await send(out)
                }
            }
            do {
                for chunk in readAhead { try await forward(chunk) }
                if let breakAfterReadAhead { throw breakAfterReadAhead }
                while let chunk = try await reader.next() {
                    lastChunkAt = ContinuousClock.now
                    try await forward(chunk)
                }
            } catch {
                if error is ClientGone || owner.isClientGone || Task.isCancelled {
                    reader.abandon()
                    await owner.finishBestEffort(finalRecord(.clientDisconnected, error: "client_disconnected"))
                    throw CancellationError()
                }
                let timedOut =
                    UpstreamClients.isTimeout(error) || ContinuousClock.now - lastChunkAt >= metering.idleTimeout * 0.9
                metrics.upstreamError(provider: draft.provider, kind: timedOut ? "idle_timeout" : "cut")
                await owner.finishBestEffort(
                    timedOut
                        ? finalRecord(.upstreamTimeout, error: "upstream_idle_timeout")
                        : finalRecord(.upstreamCut, error: "upstream_cut"))
                // Every byte received reaches the client, then the connection closes without a clean end.
                if held.readableBytes > 0 { try? await writer.write(held) }
                throw error
            }
            let record = finalRecord(.completed, error: nil)
            try await owner.finish(record)
            if held.readableBytes > 0 { try await writer.write(held) }
            try await writer.finish(nil)
        }
        return Response(status: .init(code: status), headers: headers, body: responseBody)
    }

    /// The largest JSON body sent in one piece after it has been recorded.
    static let coalesceLimit = 64 << 10

    /// A chunk through the meter: what goes to the client in its place.
    private static func feed(_ chunk: ByteBuffer, to meter: inout ResponseMeter) -> ByteBuffer {
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
