/// What the gateway needs to know about a request body before it forwards it.
public struct ParsedRequest: Sendable {
    public var endpoint: APIEndpoint
    /// The public model name as the client wrote it.
    public var model: String
    public var stream: Bool
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever the endpoint uses.
    public var maxOutputTokens: Int?
    /// `stream_options.include_usage` as the client sent it.
    public var includeUsage: Bool
    public var json: JSONValue
    /// The raw body; forwarded unchanged except for the model name.
    public var body: [UInt8]
    /// Where the `model` string (with its quotes) sits in `body`.
    public var modelSpan: Range<Int>

    /// The body with `model` replaced; every other byte is left as the client sent it.
    public func body(withModel upstreamModel: String) -> [UInt8] {
        if upstreamModel == model { return body }
        var out = [UInt8]()
        out.reserveCapacity(body.count + upstreamModel.utf8.count)
        out.append(contentsOf: body[..<modelSpan.lowerBound])
        out.append(contentsOf: JSONWriter.quoted(upstreamModel).utf8)
        out.append(contentsOf: body[modelSpan.upperBound...])
        return out
    }
}

/// Why a body was refused; `param` names the offending field as OpenAI's errors do.
public struct RequestError: Error, Sendable, Equatable {
    public var message: String
    public var param: String?

    public init(_ message: String, param: String? = nil) {
        self.message = message
        self.param = param
    }
}

public enum RequestParser {
    public static func parse(endpoint: APIEndpoint, body: [UInt8]) throws(RequestError) -> ParsedRequest {
        guard !body.isEmpty else { throw RequestError("The request body is empty; expected a JSON object.") }
        let parsed: (value: JSONValue, spans: [String: Range<Int>])
        do {
            parsed = try JSONReader.parseTopLevelObject(body)
        } catch {
            throw RequestError("We could not parse the JSON body of your request (\(error.description)).")
        }
        let json = parsed.value
        guard let modelValue = json["model"], let span = parsed.spans["model"] else {
            throw RequestError("You must provide a model parameter.", param: "model")
        }
        guard let model = modelValue.stringValue, !model.isEmpty else {
            throw RequestError("The model parameter must be a non-empty string.", param: "model")
        }
        var stream = false
        if let s = json["stream"], !s.isNull {
            guard let b = s.boolValue else { throw RequestError("stream must be a boolean.", param: "stream") }
            stream = b
        }
        if stream && !endpoint.canStream {
            throw RequestError("This endpoint does not support streaming.", param: "stream")
        }
        var maxOutput: Int?
        for key in ["max_completion_tokens", "max_tokens", "max_output_tokens"] {
            guard let v = json[key], !v.isNull else { continue }
            guard let n = v.intValue, n >= 0 else {
                throw RequestError("\(key) must be a non-negative integer.", param: key)
            }
            maxOutput = n
            break
        }
        if endpoint == .messages && maxOutput == nil {
            throw RequestError("max_tokens: Field required", param: "max_tokens")
        }
        let includeUsage = json["stream_options"]?["include_usage"]?.boolValue ?? false
        return ParsedRequest(
            endpoint: endpoint,
            model: model,
            stream: stream,
            maxOutputTokens: maxOutput,
            includeUsage: includeUsage,
            json: json,
            body: body,
            modelSpan: span
        )
    }
}
