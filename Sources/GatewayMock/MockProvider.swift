import Metering
import NIOCore

/// The built-in provider: deterministic answers for every endpoint, in OpenAI's and Anthropic's shapes.
///
/// The reply's words are chosen by a hash of the request body, so the same request always gets the same
/// bytes (ids and timestamps included), which is what byte-identity tests and benchmarks need.
public struct MockProvider: Sendable {
    public var settings: MockSettings
    /// Counts tokens of a text for the reported usage.
    public var countTokens: @Sendable (String) -> Int

    public init(settings: MockSettings, countTokens: @escaping @Sendable (String) -> Int = MockProvider.roughCount) {
        self.settings = settings
        self.countTokens = countTokens
    }

    /// About four bytes a token, the usual rule of thumb for English.
    public static let roughCount: @Sendable (String) -> Int = { max(1, ($0.utf8.count + 3) / 4) }

    static let vocabulary: [String] = [
        "meter", "token", "budget", "stream", "quota", "price", "ledger", "tenant", "gateway", "model",
        "reply", "chunk", "record", "settle", "reserve", "cache", "prompt", "output", "input", "cost",
        "alpha", "beta", "gamma", "delta", "river", "mountain", "signal", "window", "garden", "harbor",
        "lantern", "compass",
    ]

    public func reply(to request: ParsedRequest, directives: MockDirectives) -> MockReply {
        var reply = MockReply(
            status: 200,
            contentType: "application/json",
            chunks: [],
            isStream: request.stream,
            chunkDelayMilliseconds: directives.chunkDelayMilliseconds ?? settings.chunkDelayMilliseconds,
            stallBeforeHeadersMilliseconds: directives.stallAfterChunks == nil
                ? (directives.stallMilliseconds ?? 0) : 0,
            stallAfterChunks: directives.stallAfterChunks,
            stallMilliseconds: directives.stallMilliseconds ?? 0,
            cutAfterChunks: directives.cutAfterChunks
        )
        if let status = directives.status, status >= 400 {
            reply.status = status
            reply.isStream = false
            let body = ErrorBody.render(
                dialect: request.endpoint.dialect, status: status,
                message: "mock provider fault: status \(status)", code: nil)
            reply.chunks = [ByteBuffer(string: body)]
            return reply
        }
        let seed = Self.fnv1a(request.body)
        let id = String(seed, radix: 16)
        let created = 1_750_000_000 + Int(seed % 10_000_000)
        let promptTokens = PromptText.extract(endpoint: request.endpoint, json: request.json)
            .reduce(0) { $0 + countTokens($1) }

        if request.endpoint == .embeddings {
            reply.chunks = [ByteBuffer(string: embeddings(request, seed: seed, promptTokens: promptTokens))]
            return reply
        }

        var wordCount = directives.replyWords ?? settings.replyWords
        var finishedByLength = false
        if let max = request.maxOutputTokens, max < wordCount {
            wordCount = max
            finishedByLength = true
        }
        let words = Self.words(count: wordCount, seed: seed)
        let pieces = Self.split(words, into: directives.chunks ?? settings.streamChunks)
        let text = pieces.joined()
        // A provider stops at the output limit in tokens, so a truncated reply never reports more.
        let counted = wordCount == 0 ? 0 : countTokens(text)
        let completionTokens = finishedByLength ? min(counted, request.maxOutputTokens ?? counted) : counted
        let usage = Usage(prompt: promptTokens, completion: completionTokens)
        let context = Context(
            request: request, id: id, created: created, pieces: pieces, text: text, usage: usage,
            truncated: finishedByLength)

        if request.stream {
            reply.contentType = "text/event-stream"
            reply.chunks = Self.streamEvents(context).map { ByteBuffer(string: $0) }
        } else {
            // `x-mock-chunks` splits a JSON answer too, as a large body arrives in several reads.
            let body = Array(JSONWriter.serialize(Self.fullBody(context)).utf8)
            let parts = max(1, min(directives.chunks ?? 1, body.count))
            reply.chunks = (0..<parts).map { k in
                ByteBuffer(bytes: body[body.count * k / parts..<body.count * (k + 1) / parts])
            }
        }
        return reply
    }

    struct Usage {
        var prompt: Int
        var completion: Int
        var total: Int { prompt + completion }
    }

    struct Context {
        var request: ParsedRequest
        var id: String
        var created: Int
        var pieces: [String]
        var text: String
        var usage: Usage
        var truncated: Bool
        var model: JSONValue { .string(request.model) }
    }

    // MARK: Deterministic content

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    static func words(count: Int, seed: UInt64) -> [String] {
        var state = seed | 1
        var out: [String] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let word = vocabulary[Int((state >> 33) % UInt64(vocabulary.count))]
            out.append(i == 0 ? word.prefix(1).uppercased() + word.dropFirst() : " " + word)
        }
        if !out.isEmpty { out[out.count - 1] += "." }
        return out
    }

    /// Splits words into `n` contiguous pieces (fewer when there are fewer words).
    static func split(_ words: [String], into n: Int) -> [String] {
        guard !words.isEmpty else { return [""] }
        let parts = min(max(1, n), words.count)
        var pieces: [String] = []
        var start = 0
        for p in 0..<parts {
            let end = words.count * (p + 1) / parts
            pieces.append(words[start..<end].joined())
            start = end
        }
        return pieces
    }

    // MARK: Bodies

    static func openAIUsage(_ u: Usage) -> JSONValue {
        .object([
            ("prompt_tokens", .int(u.prompt)),
            ("completion_tokens", .int(u.completion)),
            ("total_tokens", .int(u.total)),
            ("prompt_tokens_details", .object([("cached_tokens", 0)])),
            ("completion_tokens_details", .object([("reasoning_tokens", 0)])),
        ])
    }

    static func responsesUsage(_ u: Usage) -> JSONValue {
        .object([
            ("input_tokens", .int(u.prompt)),
            ("input_tokens_details", .object([("cached_tokens", 0)])),
            ("output_tokens", .int(u.completion)),
            ("output_tokens_details", .object([("reasoning_tokens", 0)])),
            ("total_tokens", .int(u.total)),
        ])
    }

    static func anthropicUsage(input: Int, output: Int) -> JSONValue {
        .object([
            ("input_tokens", .int(input)),
            ("cache_creation_input_tokens", 0),
            ("cache_read_input_tokens", 0),
            ("output_tokens", .int(output)),
        ])
    }

    static func fullBody(_ c: Context) -> JSONValue {
        let finish: JSONValue = c.truncated ? "length" : "stop"
        switch c.request.endpoint {
        case .chatCompletions:
            return .object([
                ("id", .string("chatcmpl-mock-\(c.id)")),
                ("object", "chat.completion"),
                ("created", .int(c.created)),
                ("model", c.model),
                (
                    "choices",
                    .array([
                        .object([
                            ("index", 0),
                            (
                                "message",
                                .object([("role", "assistant"), ("content", .string(c.text)), ("refusal", nil)])
                            ),
                            ("logprobs", nil),
                            ("finish_reason", finish),
                        ])
                    ])
                ),
                ("usage", openAIUsage(c.usage)),
                ("system_fingerprint", "fp_mock"),
            ])
        case .completions:
            return .object([
                ("id", .string("cmpl-mock-\(c.id)")),
                ("object", "text_completion"),
                ("created", .int(c.created)),
                ("model", c.model),
                (
                    "choices",
                    .array([
                        .object([
                            ("text", .string(c.text)), ("index", 0), ("logprobs", nil), ("finish_reason", finish),
                        ])
                    ])
                ),
                ("usage", openAIUsage(c.usage)),
            ])
        case .responses:
            return responseObject(c, status: "completed", output: [outputMessage(c, text: c.text)], usage: true)
        case .messages:
            return .object([
                ("id", .string("msg_mock_\(c.id)")),
                ("type", "message"),
                ("role", "assistant"),
                ("model", c.model),
                ("content", .array([.object([("type", "text"), ("text", .string(c.text))])])),
                ("stop_reason", c.truncated ? "max_tokens" : "end_turn"),
                ("stop_sequence", nil),
                ("usage", anthropicUsage(input: c.usage.prompt, output: c.usage.completion)),
            ])
        case .embeddings:
            return nil  // handled by embeddings(_:seed:promptTokens:)
        }
    }

    static func outputMessage(_ c: Context, text: String, done: Bool = true) -> JSONValue {
        .object([
            ("id", .string("msg_mock_\(c.id)")),
            ("type", "message"),
            ("status", done ? "completed" : "in_progress"),
            ("role", "assistant"),
            (
                "content",
                done
                    ? .array([.object([("type", "output_text"), ("text", .string(text)), ("annotations", .array([]))])])
                    : .array([])
            ),
        ])
    }

    static func responseObject(_ c: Context, status: String, output: [JSONValue], usage: Bool) -> JSONValue {
        .object([
            ("id", .string("resp_mock_\(c.id)")),
            ("object", "response"),
            ("created_at", .int(c.created)),
            ("status", .string(status)),
            ("model", c.model),
            ("output", .array(output)),
            ("usage", usage ? responsesUsage(c.usage) : nil),
        ])
    }

    static func sse(_ value: JSONValue, event: String? = nil) -> String {
        let data = "data: " + JSONWriter.serialize(value) + "\n\n"
        guard let event else { return data }
        return "event: \(event)\n" + data
    }

    static func streamEvents(_ c: Context) -> [String] {
        switch c.request.endpoint {
        case .chatCompletions, .completions: return openAIStream(c)
        case .responses: return responsesStream(c)
        case .messages: return anthropicStream(c)
        case .embeddings: return []
        }
    }

    static func openAIStream(_ c: Context) -> [String] {
        let chat = c.request.endpoint == .chatCompletions
        let withUsage = c.request.includeUsage
        func chunk(_ choice: [(String, JSONValue)], choices: Bool = true) -> String {
            var members: [(String, JSONValue)] = [
                ("id", .string(chat ? "chatcmpl-mock-\(c.id)" : "cmpl-mock-\(c.id)")),
                ("object", chat ? "chat.completion.chunk" : "text_completion"),
                ("created", .int(c.created)),
                ("model", c.model),
                ("system_fingerprint", "fp_mock"),
                ("choices", choices ? .array([.object(choice)]) : .array([])),
            ]
            if withUsage { members.append(("usage", nil)) }
            return sse(.object(members))
        }
        var events: [String] = []
        if chat {
            events.append(
                chunk([
                    ("index", 0), ("delta", .object([("role", "assistant"), ("content", ""), ("refusal", nil)])),
                    ("logprobs", nil), ("finish_reason", nil),
                ]))
        }
        for piece in c.pieces {
            if chat {
                events.append(
                    chunk([
                        ("index", 0), ("delta", .object([("content", .string(piece))])), ("logprobs", nil),
                        ("finish_reason", nil),
                    ]))
            } else {
                events.append(
                    chunk([("text", .string(piece)), ("index", 0), ("logprobs", nil), ("finish_reason", nil)]))
            }
        }
        let finish: JSONValue = c.truncated ? "length" : "stop"
        if chat {
            events.append(
                chunk([("index", 0), ("delta", .object([])), ("logprobs", nil), ("finish_reason", finish)]))
        } else {
            events.append(chunk([("text", ""), ("index", 0), ("logprobs", nil), ("finish_reason", finish)]))
        }
        if withUsage {
            events.append(
                sse(
                    .object([
                        ("id", .string(chat ? "chatcmpl-mock-\(c.id)" : "cmpl-mock-\(c.id)")),
                        ("object", chat ? "chat.completion.chunk" : "text_completion"),
                        ("created", .int(c.created)),
                        ("model", c.model),
                        ("system_fingerprint", "fp_mock"),
                        ("choices", .array([])),
                        ("usage", openAIUsage(c.usage)),
                    ])))
        }
        events.append("data: [DONE]\n\n")
        return events
    }

    static func responsesStream(_ c: Context) -> [String] {
        var seq = 0
        var events: [String] = []
        func emit(_ type: String, _ members: [(String, JSONValue)]) {
            events.append(
                sse(.object([("type", .string(type)), ("sequence_number", .int(seq))] + members), event: type))
            seq += 1
        }
        let itemID: JSONValue = .string("msg_mock_\(c.id)")
        emit("response.created", [("response", responseObject(c, status: "in_progress", output: [], usage: false))])
        emit("response.in_progress", [("response", responseObject(c, status: "in_progress", output: [], usage: false))])
        emit("response.output_item.added", [("output_index", 0), ("item", outputMessage(c, text: "", done: false))])
        emit(
            "response.content_part.added",
            [
                ("item_id", itemID), ("output_index", 0), ("content_index", 0),
                ("part", .object([("type", "output_text"), ("text", ""), ("annotations", .array([]))])),
            ])
        for piece in c.pieces {
            emit(
                "response.output_text.delta",
                [("item_id", itemID), ("output_index", 0), ("content_index", 0), ("delta", .string(piece))])
        }
        emit(
            "response.output_text.done",
            [("item_id", itemID), ("output_index", 0), ("content_index", 0), ("text", .string(c.text))])
        emit(
            "response.content_part.done",
            [
                ("item_id", itemID), ("output_index", 0), ("content_index", 0),
                ("part", .object([("type", "output_text"), ("text", .string(c.text)), ("annotations", .array([]))])),
            ])
        emit("response.output_item.done", [("output_index", 0), ("item", outputMessage(c, text: c.text))])
        emit(
            "response.completed",
            [
                (
                    "response",
                    responseObject(c, status: "completed", output: [outputMessage(c, text: c.text)], usage: true)
                )
            ]
        )
        return events
    }

    static func anthropicStream(_ c: Context) -> [String] {
        var events: [String] = []
        events.append(
            sse(
                .object([
                    ("type", "message_start"),
                    (
                        "message",
                        .object([
                            ("id", .string("msg_mock_\(c.id)")), ("type", "message"), ("role", "assistant"),
                            ("model", c.model), ("content", .array([])), ("stop_reason", nil), ("stop_sequence", nil),
                            ("usage", anthropicUsage(input: c.usage.prompt, output: 1)),
                        ])
                    ),
                ]), event: "message_start"))
        events.append(
            sse(
                .object([
                    ("type", "content_block_start"), ("index", 0),
                    ("content_block", .object([("type", "text"), ("text", "")])),
                ]), event: "content_block_start"))
        events.append(sse(.object([("type", "ping")]), event: "ping"))
        for piece in c.pieces {
            events.append(
                sse(
                    .object([
                        ("type", "content_block_delta"), ("index", 0),
                        ("delta", .object([("type", "text_delta"), ("text", .string(piece))])),
                    ]), event: "content_block_delta"))
        }
        events.append(sse(.object([("type", "content_block_stop"), ("index", 0)]), event: "content_block_stop"))
        events.append(
            sse(
                .object([
                    ("type", "message_delta"),
                    (
                        "delta",
                        .object([("stop_reason", c.truncated ? "max_tokens" : "end_turn"), ("stop_sequence", nil)])
                    ),
                    ("usage", .object([("output_tokens", .int(c.usage.completion))])),
                ]), event: "message_delta"))
        events.append(sse(.object([("type", "message_stop")]), event: "message_stop"))
        return events
    }

    func embeddings(_ request: ParsedRequest, seed: UInt64, promptTokens: Int) -> String {
        let inputs: Int
        switch request.json["input"] {
        case .array(let items) where !(items.first.map { if case .number = $0 { true } else { false } } ?? false):
            inputs = max(1, items.count)
        default: inputs = 1
        }
        let dimensions = min(max(request.json["dimensions"]?.intValue ?? 8, 1), 4096)
        let base64 = request.json["encoding_format"]?.stringValue == "base64"
        var data: [JSONValue] = []
        var state = seed | 1
        for index in 0..<inputs {
            var values: [Float] = []
            for _ in 0..<dimensions {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                // Multiples of 1/1024 in (-1, 1): exact in binary, so text and base64 agree.
                values.append(Float(Int((state >> 40) % 2047) - 1023) / 1024)
            }
            let embedding: JSONValue
            if base64 {
                var bytes: [UInt8] = []
                for v in values {
                    let bits = v.bitPattern
                    bytes += [UInt8(bits & 0xFF), UInt8(bits >> 8 & 0xFF), UInt8(bits >> 16 & 0xFF), UInt8(bits >> 24)]
                }
                embedding = .string(Base64.encode(bytes))
            } else {
                embedding = .array(values.map { .number("\($0)") })
            }
            data.append(.object([("object", "embedding"), ("index", .int(index)), ("embedding", embedding)]))
        }
        return JSONWriter.serialize(
            .object([
                ("object", "list"),
                ("data", .array(data)),
                ("model", .string(request.model)),
                ("usage", .object([("prompt_tokens", .int(promptTokens)), ("total_tokens", .int(promptTokens))])),
            ]))
    }
}

/// Standard base64 (RFC 4648) for the few places the gateway writes it.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [
                alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)],
            ]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], 61, 61]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
