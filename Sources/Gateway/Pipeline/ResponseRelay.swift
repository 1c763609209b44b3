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
        let meter = ResponseMeter(
            endpoint: metering.endpoint, streaming: isEventStream, encoding: metering.encoding,
            stripInjectedUsage: strip)
        let body = upstream.body
        let status = upstream.status
        let recorder = recorder
        let metrics = metrics
        let responseBody = ResponseBody(contentLength: strip ? nil : upstream.contentLength) { writer in
            var meter = meter
            var held = ByteBuffer()
            var firstByteAt: Date?
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
            do {
                try await body.forEachChunk { chunk in
                    let out: ByteBuffer
                    switch meter.feed(chunk.readableBytesView) {
                    case .unchanged: out = chunk
                    case .replaced(let bytes): out = ByteBuffer(bytes: bytes)
                    }
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
            let record = settle(
                success ? .completed : .upstreamError, error: success ? nil : "upstream_status_\(status)")
            try await recorder.record(record, reservation: reservation)
            if held.readableBytes > 0 { try await writer.write(held) }
            try await writer.finish(nil)
        }
        return Response(status: .init(code: upstream.status), headers: headers, body: responseBody)
    }

    /// The human message inside an upstream error body, in either provider's format.
    static func upstreamMessage(_ body: ByteBuffer) -> String? {
        guard let json = try? JSONReader.parse(Array(body.readableBytesView)) else { return nil }
        return json["error"]?["message"]?.stringValue
    }
}
