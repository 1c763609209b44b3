import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// A JSON answer the gateway writes itself, with the request's id: the one place such responses are
/// assembled.
enum JSONResponse {
    static func make(
        _ status: Int, _ body: JSONValue, requestID: String?, extraHeaders: HTTPFields = [:]
    ) -> Response {
        text(status, JSONWriter.serialize(body), requestID: requestID, extraHeaders: extraHeaders)
    }

    static func text(_ status: Int, _ text: String, requestID: String?, extraHeaders: HTTPFields = [:]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let requestID { headers[.requestID] = requestID }
        headers.append(contentsOf: extraHeaders)
        return Response(
            status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
