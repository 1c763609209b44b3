/// What the gateway needs to know about a request body before it forwards it.
public struct ParsedRequest: Sendable {
    public var endpoint: APIEndpoint
    /// The public model name as the client wrote it.
    public var model: String
    public var stream: Bool
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever the endpoint uses.
    public var maxOutputTokens: Int?
    /// The member that set `maxOutputTokens`, for errors that name it.
    public var maxOutputParam: String?
    /// How many answers the request asks for (`n`): each may be as long as the output limit.
    public var choices: Int = 1
    /// `stream_options.include_usage` as the client sent it.
    public var includeUsage: Bool
    public var json: JSONValue
    /// The raw body; forwarded unchanged except for the model name.
    public var body: [UInt8]
    /// Where the `model` string (with its quotes) sits in `body`.
    public var modelSpan: Range<Int>
    /// Where the `stream_options` value sits in `body`, if the client sent one.
    public var streamOptionsSpan: Range<Int>?
    /// Where each output-limit member's value sits in `body` (a client may send one as `null`).
    public var outputLimitSpans: [String: Range<Int>] = [:]

    /// The body with `model` replaced; every other byte is left as the client sent it.
    public func body(withModel upstreamModel: String) -> [UInt8] {
        upstreamBody(model: upstreamModel, requestUsage: false)
    }

    /// Whether the gateway must ask the upstream for streamed usage the client did not ask for.
    public var needsInjectedUsage: Bool {
        stream && !includeUsage && (endpoint == .chatCompletions || endpoint == .completions)
    }

    /// The body to send upstream: `model` replaced by the upstream's name and, when `requestUsage` is set
    /// and the client did not ask for it, `stream_options.include_usage` turned on so that the upstream
    /// reports the usage the gateway bills. Every other byte is left as the client sent it.
    ///
    /// `outputCap`, when given and the client set no output limit, is added as that member, so the
    /// upstream cannot produce more than the reservation was made for.
    public func upstreamBody(
        model upstreamModel: String, requestUsage: Bool, outputCap: (member: String, tokens: Int)? = nil
    ) -> [UInt8] {
        var edits: [(range: Range<Int>, text: String)] = []
        if upstreamModel != model { edits.append((modelSpan, JSONWriter.quoted(upstreamModel))) }
        if let outputCap, maxOutputTokens == nil {
            if let span = outputLimitSpans[outputCap.member] {
                // The client sent the member as null: its value becomes the cap, so it is not repeated.
                edits.append((span, String(outputCap.tokens)))
            } else if let open = body.firstIndex(of: UInt8(ascii: "{")) {
                edits.append((open + 1..<open + 1, "\(JSONWriter.quoted(outputCap.member)):\(outputCap.tokens),"))
            }
        }
        if requestUsage && !includeUsage {
            if let span = streamOptionsSpan, case .object(var members) = json["stream_options"] ?? .null {
                members.removeAll { $0.0 == "include_usage" }
                members.append(("include_usage", true))
                edits.append((span, JSONWriter.serialize(.object(members))))
            } else if let open = body.firstIndex(of: UInt8(ascii: "{")) {
                // No (usable) stream_options: add one as the first member; `model` follows it.
                if let span = streamOptionsSpan {
                    edits.append((span, #"{"include_usage":true}"#))
                } else {
                    edits.append((open + 1..<open + 1, #""stream_options":{"include_usage":true},"#))
                }
            }
        }
        if edits.isEmpty { return body }
        edits.sort { $0.range.lowerBound < $1.range.lowerBound }
        var out = [UInt8]()
        out.reserveCapacity(body.count + 64)
        var position = 0
        for edit in edits {
            out.append(contentsOf: body[position..<edit.range.lowerBound])
            out.append(contentsOf: edit.text.utf8)
            position = edit.range.upperBound
        }
        out.append(contentsOf: body[position...])
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
    /// The members that limit output, in the order the parser reads them.
    static let outputLimitMembers = ["max_completion_tokens", "max_tokens", "max_output_tokens"]

    /// OpenAI's own limit on `n`.
    public static let maxChoices = 128

    public static func parse(endpoint: APIEndpoint, body: [UInt8]) throws(RequestError) -> ParsedRequest {
        guard !body.isEmpty else { throw RequestError("The request body is empty; expected a JSON object.") }
        let parsed: (value: JSONValue, spans: MemberSpans)
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
        guard model.utf8.count <= 256,
            !model.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw RequestError(
                "The model parameter must be at most 256 bytes with no control characters.", param: "model")
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
        var maxOutputParam: String?
        for key in Self.outputLimitMembers {
            guard let v = json[key], !v.isNull else { continue }
            guard let n = v.intValue, n >= 0 else {
                throw RequestError("\(key) must be a non-negative integer.", param: key)
            }
            maxOutput = n
            maxOutputParam = key
            break
        }
        var choices = 1
        if endpoint == .chatCompletions || endpoint == .completions, let v = json["n"], !v.isNull {
            guard let n = v.intValue, (1...Self.maxChoices).contains(n) else {
                throw RequestError("n must be an integer from 1 to \(Self.maxChoices).", param: "n")
            }
            choices = n
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
            maxOutputParam: maxOutputParam,
            choices: choices,
            includeUsage: includeUsage,
            json: json,
            body: body,
            modelSpan: span,
            streamOptionsSpan: parsed.spans["stream_options"],
            outputLimitSpans: Dictionary(
                uniqueKeysWithValues: parsed.spans.members.lazy.filter { Self.outputLimitMembers.contains($0.key) }
                    .map { ($0.key, $0.span) })
        )
    }
}
