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
    let recorder: BillingRecorder
    let metrics: GatewayMetrics

    /// What the meter needs that the upstream response does not say.
    struct Metering: Sendable {
        var endpoint: APIEndpoint
        var encoding: TokenEncoding
        /// The gateway added `stream_options.include_usage`; strip what the client did not ask for.
        var injectedUsage: Bool
    }

    private struct ClientGone: Error {}

    func relay(
        _ upstream: UpstreamResponse, draft: BillingDraft, metering: Metering, dialect: APIDialect,
        extraHeaders: HTTPFields = [:]
    ) async throws(GatewayError) -> Response {
        let reservation = draft.reservation
        if upstream.status >= 500 {
            let body = await upstream.body.collect(upTo: 16 << 10)
            metrics.upstreamError(provider: draft.provider, kind: "status_\(upstream.status)")
            await recorder.recordBestEffort(
                draft.settle(
                    status: .upstreamError, httpStatus: 502, upstreamStatus: upstream.status,
                    error: "upstream_status_\(upstream.status)", meter: nil, endedAt: Date(), firstByteAt: nil),
                reservation: reservation)
            throw GatewayError.upstreamStatus(
                provider: draft.provider, status: upstream.status, detail: Self.upstreamMessage(body)
            ).recorded()
        }
        var headers = HTTPFields()
        for (name, value) in upstream.headers {
            if let n = HTTPField.Name(name) { headers.append(HTTPField(name: n, value: value)) }
        }
        let isEventStream = headers[.contentType]?.lowercased().hasPrefix("text/event-stream") ?? false
        headers[.requestID] = draft.requestID
        headers.append(contentsOf: extraHeaders)
        let success = (200..<300).contains(upstream.status)
        let strip = success && isEventStream && metering.injectedUsage
        var meter = ResponseMeter(
            endpoint: metering.endpoint, streaming: isEventStream, encoding: metering.encoding,
            stripInjectedUsage: strip)
        let reader = upstream.body.makeReader()
        let status = upstream.status
        let recorder = recorder
        let metrics = metrics

        // A JSON body that ends within `coalesceLimit` bytes is metered and recorded before anything is
        // sent, then goes out with its head in one write. A client cannot use part of a JSON document,
        // so it loses nothing, and the response costs one socket write instead of two. A longer body, or
        // one that breaks off, streams as below, starting with the chunks already read.
        var ahead: [ByteBuffer] = []
        var broken: (any Error)?
        var firstChunkAt: Date?  // when the upstream's first byte came, not when it was sent on
        if !isEventStream {
            var size = 0
            do {
                while size <= Self.coalesceLimit {
                    guard let chunk = try await reader.next() else {
                        return try await Self.whole(
                            ahead, firstByteAt: firstChunkAt, meter: &meter, draft: draft, status: status,
                            recorder: recorder, headers: headers)
                    }
                    if firstChunkAt == nil && chunk.readableBytes > 0 { firstChunkAt = Date() }
                    size += chunk.readableBytes
                    ahead.append(chunk)
                }
            } catch {
                broken = error
            }
        }

        let readAhead = ahead
        let breakAfterReadAhead = broken
        let unfedMeter = meter
        let readAheadStartedAt = firstChunkAt
        let responseBody = ResponseBody(contentLength: strip ? nil : upstream.contentLength) { writer in
            var meter = unfedMeter
            var held = ByteBuffer()
            var firstByteAt = readAheadStartedAt
            func send(_ buffer: ByteBuffer) async throws {
                do {
                    try await writer.write(buffer)
                } catch {
                    throw ClientGone()
                }
            }
            func settle(_ outcome: BillingRecord.Status, error: String?) -> BillingRecord {
                held.writeBytes(meter.finish())
                return draft.settle(
                    status: outcome, httpStatus: status, upstreamStatus: status, error: error, meter: meter.usage,
                    endedAt: Date(), firstByteAt: firstByteAt)
            }
            func relay(_ chunk: ByteBuffer) async throws {
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
                for chunk in readAhead { try await relay(chunk) }
                if let breakAfterReadAhead { throw breakAfterReadAhead }
                while let chunk = try await reader.next() { try await relay(chunk) }
            } catch is ClientGone {
                await recorder.recordBestEffort(
                    settle(.clientDisconnected, error: "client_disconnected"), reservation: reservation)
                throw CancellationError()
            } catch {
                if Task.isCancelled {
                    await recorder.recordBestEffort(
                        settle(.clientDisconnected, error: "client_disconnected"), reservation: reservation)
                    throw error
                }
                metrics.upstreamError(provider: draft.provider, kind: "cut")
                await recorder.recordBestEffort(settle(.upstreamCut, error: "upstream_cut"), reservation: reservation)
                // Every byte received reaches the client, then the connection closes without a clean end.
                if held.readableBytes > 0 { try? await writer.write(held) }
                throw error
            }
            let (outcome, error) = Self.outcome(status: status)
            let record = settle(outcome, error: error)
            try await recorder.record(record, reservation: reservation)
            if held.readableBytes > 0 { try await writer.write(held) }
            try await writer.finish(nil)
        }
        return Response(status: .init(code: upstream.status), headers: headers, body: responseBody)
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

    /// How a body that ended cleanly is recorded: completed for a 2xx, else the upstream's error.
    private static func outcome(status: Int) -> (BillingRecord.Status, String?) {
        (200..<300).contains(status) ? (.completed, nil) : (.upstreamError, "upstream_status_\(status)")
    }

    /// A complete JSON body: meter, settle and record it, then answer with head and body together. If
    /// the record cannot be stored the client gets an error, never the answer without its record.
    private static func whole(
        _ chunks: [ByteBuffer], firstByteAt: Date?, meter: inout ResponseMeter, draft: BillingDraft, status: Int,
        recorder: BillingRecorder, headers: HTTPFields
    ) async throws(GatewayError) -> Response {
        var body = ByteBuffer()
        for chunk in chunks {
            var out = feed(chunk, to: &meter)
            body.writeBuffer(&out)
        }
        body.writeBytes(meter.finish())
        let (outcome, error) = outcome(status: status)
        let record = draft.settle(
            status: outcome, httpStatus: status, upstreamStatus: status, error: error, meter: meter.usage,
            endedAt: Date(), firstByteAt: firstByteAt)
        do {
            try await recorder.record(record, reservation: draft.reservation)
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
