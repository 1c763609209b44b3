/// Reads usage from the bytes of a response as they pass through, without holding the body.
///
/// Fed with every chunk the gateway forwards (JSON or SSE, split anywhere), it keeps the usage the
/// upstream reported, if any, and counts locally every generated delta (content, reasoning content,
/// tool-call names and arguments, Anthropic text, thinking and tool input), so a response the upstream
/// never reports (a cut stream, a client that went away, a provider without usage) can still be billed.
public struct UsageMeter: Sendable {
    public let endpoint: APIEndpoint
    public let streaming: Bool
    /// What the upstream reported; for streams, the last report wins (Anthropic's `output_tokens` in
    /// `message_delta` is cumulative; OpenAI's usage chunk comes once, at the end).
    public private(set) var reported: Usage?
    /// Whether the stream reached its end marker (`[DONE]`, `message_stop`, `response.completed`).
    public private(set) var completed = false
    private let encoding: TokenEncoding
    /// One counter per output channel (content, reasoning, each tool call's name and arguments, each
    /// content block): deltas continue their own channel, and separate texts are never tokenized as one.
    private var channels: [Channel: StreamingTokenCounter] = [:]
    private var framer = SSEEventFramer()
    private var body: [UInt8] = []
    private let bodyLimit: Int

    /// `bodyLimit` bounds how much of a non-streamed JSON body is kept for parsing at the end.
    public init(endpoint: APIEndpoint, streaming: Bool, encoding: TokenEncoding, bodyLimit: Int = 32 << 20) {
        self.endpoint = endpoint
        self.streaming = streaming
        self.encoding = encoding
        self.bodyLimit = bodyLimit
    }

    /// Locally counted completion tokens so far.
    public var localCompletionTokens: Int { channels.values.reduce(0) { $0 + $1.finalCount } }

    private mutating func count(_ text: String, _ channel: Channel) {
        channels[channel, default: StreamingTokenCounter(encoding: encoding)].append(text)
    }

    /// An output channel: the choice, output item or content block, what part of it, and which tool
    /// call or content part. A value, not a formatted string: one is looked up for every streamed delta.
    struct Channel: Hashable {
        enum Part: UInt8 {
            case text, content, reasoning, toolName, toolArguments, contentPart, arguments
            case block, blockName, blockInput
        }

        var item: Int
        var part: Part
        var sub = 0
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) {
        if streaming {
            if bytes.withContiguousStorageIfAvailable({ frame($0) }) == nil {
                Array(bytes).withUnsafeBufferPointer { frame($0) }
            }
        } else if body.count < bodyLimit {
            body.append(contentsOf: bytes)
        }
    }

    /// Call once the body has ended (or was cut): parses a non-streamed body.
    public mutating func finish() {
        guard !streaming else { return }
        if endpoint == .messages {
            guard let json = try? JSONReader.parse(body) else { return }
            body = []
            completed = true
            reported = json["usage"].flatMap(Usage.anthropic)
            for (i, block) in (json["content"]?.arrayValue ?? []).enumerated() { countAnthropicBlock(block, index: i) }
            return
        }
        // Read in place, as a streamed chunk is: the tree of a whole answer cost more than reading it.
        var body = self.body
        let valid = body.withUnsafeMutableBufferPointer { bytes in
            var scan = JSONScan(UnsafeBufferPointer(bytes))
            guard let top = scan.validate(0..<bytes.count) else { return false }
            observeOpenAIBody(scan, top)
            return true
        }
        guard valid else { return }
        self.body = []
        completed = true
    }

    /// A whole OpenAI answer (chat, completions, embeddings, responses), the object at `top`.
    private mutating func observeOpenAIBody(_ scan: JSONScan, _ top: Range<Int>) {
        let (usage, choices, output, _) = scan.members(top, "usage", "choices", "output")
        if let usage { report(scan, usage) }
        if let choices { observeOpenAIChoices(scan, choices, message: "message", usage: false) }
        guard let output else { return }
        var i = 0
        scan.forEachElement(output) { item in
            defer { i += 1 }
            let (content, arguments, _, _) = scan.members(item, "content", "arguments")
            if let content {
                var j = 0
                scan.forEachElement(content) { part in
                    defer { j += 1 }
                    if let s = scan.member(part, "text").flatMap(scan.string) {
                        count(s, Channel(item: i, part: .contentPart, sub: j))
                    }
                }
            }
            if let s = arguments.flatMap(scan.string) { count(s, Channel(item: i, part: .arguments)) }
        }
    }

    private mutating func handle(_ event: SSEParser.Event) {
        if event.data == "[DONE]" {
            completed = true
            return
        }
        switch endpoint {
        case .messages, .responses:
            guard let json = try? JSONReader.parse(event.data) else { return }
            observe(json)
        default:
            var data = event.data
            data.withUTF8 { bytes in
                var scan = JSONScan(bytes)
                if let top = scan.validate(0..<bytes.count) { observeOpenAIChunk(scan, top) }
            }
        }
    }

    private mutating func frame(_ chunk: UnsafeBufferPointer<UInt8>) {
        var framer = self.framer
        self.framer = SSEEventFramer()
        framer.feed(chunk) { observe(rawEvent: $0) }
        self.framer = framer
    }

    /// One complete raw event, already framed (the meter stage frames events once).
    mutating func observe(rawEvent event: UnsafeBufferPointer<UInt8>) {
        // An OpenAI event with one `data:` line is read where it lies; anything else is parsed first.
        if endpoint != .messages && endpoint != .responses, let payload = SSELines.dataLine(in: event) {
            if payload.count == 6 && "[DONE]".utf8.elementsEqual(UnsafeBufferPointer(rebasing: event[payload])) {
                completed = true
                return
            }
            var scan = JSONScan(event)
            if let top = scan.validate(payload) { observeOpenAIChunk(scan, top) }
            return
        }
        if let parsed = SSEParser.parse(event) { handle(parsed) }
    }

    /// One Anthropic or Responses event's JSON payload.
    private mutating func observe(_ json: JSONValue) {
        switch endpoint {
        case .messages: handleAnthropic(json)
        default: handleResponses(json)
        }
    }

    /// One OpenAI chunk (chat or completions), the object at `top`, read in place. Returns where its
    /// top-level `usage` and `choices` are, for the meter stage's rewriting.
    @discardableResult
    mutating func observeOpenAIChunk(_ scan: JSONScan, _ top: Range<Int>) -> (usage: Range<Int>?, choices: Range<Int>?)
    {
        var usage: Range<Int>?
        var usageMembers = 0
        var choices: Range<Int>?
        scan.forEachMember(top) { key, value in
            if scan.keyEquals(key, "usage") {
                usage = value
                usageMembers += 1
            } else if scan.keyEquals(key, "choices") {
                choices = value
            }
        }
        if let usage { report(scan, usage) }
        if let choices { observeOpenAIChoices(scan, choices, message: "delta", usage: true) }
        // A repeated `usage` is metered as the last one, but not rewritten: which one a client's reader
        // would take is not ours to change.
        return (usageMembers == 1 ? usage : nil, choices)
    }

    /// Each choice of an answer (`message`) or a chunk (`delta`): its index, message and text, and with
    /// `usage` the usage some providers put inside a choice (Moonshot has documented it there).
    private mutating func observeOpenAIChoices(
        _ scan: JSONScan, _ choices: Range<Int>, message messageKey: StaticString, usage readsUsage: Bool
    ) {
        scan.forEachElement(choices) { choice in
            let (message, index, text, usage) = scan.members(
                choice, messageKey, "index", "text", readsUsage ? "usage" : nil)
            if let usage { report(scan, usage) }
            let c = index.flatMap(scan.int) ?? 0
            if let message { countOpenAIMessage(scan, message, choice: c) }
            if let s = text.flatMap(scan.string) { count(s, Channel(item: c, part: .text)) }
        }
    }

    private mutating func report(_ scan: JSONScan, _ usage: Range<Int>) {
        if !scan.isNull(usage), let value = scan.tree(usage).flatMap(Usage.openAI) { reported = value }
    }

    private mutating func countOpenAIMessage(_ scan: JSONScan, _ m: Range<Int>, choice: Int) {
        let (content, reasoning, toolCalls, _) = scan.members(m, "content", "reasoning_content", "tool_calls")
        if let s = content.flatMap(scan.string) { count(s, Channel(item: choice, part: .content)) }
        if let s = reasoning.flatMap(scan.string) { count(s, Channel(item: choice, part: .reasoning)) }
        guard let toolCalls else { return }
        var position = 0
        scan.forEachElement(toolCalls) { call in
            let (index, function, _, _) = scan.members(call, "index", "function")
            let i = index.flatMap(scan.int) ?? position
            position += 1
            guard let function else { return }
            let (name, arguments, _, _) = scan.members(function, "name", "arguments")
            if let s = name.flatMap(scan.string) { count(s, Channel(item: choice, part: .toolName, sub: i)) }
            if let s = arguments.flatMap(scan.string) { count(s, Channel(item: choice, part: .toolArguments, sub: i)) }
        }
    }

    private mutating func handleResponses(_ json: JSONValue) {
        switch json["type"]?.stringValue {
        case "response.output_text.delta", "response.reasoning_summary_text.delta",
            "response.function_call_arguments.delta":
            let channel = Channel(
                item: json["output_index"]?.intValue ?? 0, part: .contentPart, sub: json["content_index"]?.intValue ?? 0
            )
            if let s = json["delta"]?.stringValue { count(s, channel) }
        case "response.completed", "response.incomplete", "response.failed":
            if let usage = json["response"]?["usage"].flatMap(Usage.openAI) { reported = usage }
            completed = true
        default:
            break
        }
    }

    private mutating func handleAnthropic(_ json: JSONValue) {
        switch json["type"]?.stringValue {
        case "message_start":
            if let usage = json["message"]?["usage"].flatMap(Usage.anthropic) { reported = usage }
        case "message_delta":
            // Cumulative output (take the last value, never add); some fields may be repeated.
            if let u = json["usage"] {
                var merged = reported ?? Usage()
                if let out = Usage.count(u["output_tokens"]) { merged.completion = out }
                if u["input_tokens"] != nil || u["cache_read_input_tokens"] != nil,
                    let full = Usage.anthropic(u.withDefaults(from: reported))
                {
                    merged.prompt = full.prompt
                    merged.cachedPrompt = full.cachedPrompt
                    merged.cacheWrite = full.cacheWrite
                }
                reported = merged
            }
        case "content_block_start":
            if let block = json["content_block"] { countAnthropicBlock(block, index: json["index"]?.intValue ?? 0) }
        case "content_block_delta":
            let d = json["delta"]
            let index = json["index"]?.intValue ?? 0
            for key in ["text", "thinking", "partial_json"] {
                if let s = d?[key]?.stringValue { count(s, Channel(item: index, part: .block)) }
            }
        case "message_stop":
            completed = true
        default:
            break
        }
    }

    private mutating func countAnthropicBlock(_ block: JSONValue, index: Int) {
        if let s = block["text"]?.stringValue { count(s, Channel(item: index, part: .block)) }
        if let s = block["thinking"]?.stringValue { count(s, Channel(item: index, part: .block)) }
        if block["type"]?.stringValue == "tool_use" {
            if let s = block["name"]?.stringValue { count(s, Channel(item: index, part: .blockName)) }
            if let input = block["input"], !(input.objectValue?.isEmpty ?? true) {
                count(JSONWriter.serialize(input), Channel(item: index, part: .blockInput))
            }
        }
    }
}

extension JSONValue {
    /// An Anthropic `message_delta` usage may omit fields `message_start` gave; keep those.
    fileprivate func withDefaults(from usage: Usage?) -> JSONValue {
        guard let usage, case .object(var members) = self else { return self }
        let have = Set(members.map(\.0))
        if !have.contains("cache_read_input_tokens") {
            members.append(("cache_read_input_tokens", .int(usage.cachedPrompt)))
        }
        if !have.contains("cache_creation_input_tokens") {
            members.append(("cache_creation_input_tokens", .int(usage.cacheWrite)))
        }
        if !have.contains("input_tokens") {
            members.append(("input_tokens", .int(usage.prompt - usage.cachedPrompt - usage.cacheWrite)))
        }
        return .object(members)
    }
}
