import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// Sends the upstream's answer to the client as it arrives.
///
/// Success and client errors (4xx) pass through byte for byte; an upstream 5xx becomes a 502 in the
/// client's format. If the upstream stream breaks after the headers went out, the client connection is
/// closed without a clean end, so the client sees a truncated response rather than a false success.
enum ResponseRelay {
    static func relay(
        _ upstream: UpstreamResponse, provider: String, dialect: APIDialect, requestID: String
    ) async throws(GatewayError) -> Response {
        if upstream.status >= 500 {
            let body = await upstream.body.collect(upTo: 16 << 10)
            throw GatewayError.upstreamStatus(
                provider: provider, status: upstream.status, detail: upstreamMessage(body))
        }
        var headers = HTTPFields()
        for (name, value) in upstream.headers {
            if let n = HTTPField.Name(name) { headers.append(HTTPField(name: n, value: value)) }
        }
        headers[.requestID] = requestID
        let body = upstream.body
        let responseBody = ResponseBody(contentLength: upstream.contentLength) { writer in
            try await body.forEachChunk { chunk in try await writer.write(chunk) }
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
