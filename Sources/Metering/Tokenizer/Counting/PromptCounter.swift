/// Counts the prompt of a request the way the provider bills it, before the request is sent.
///
/// OpenAI chat requests follow the OpenAI cookbook's counting guide ("How to count tokens with
/// tiktoken"): 3 tokens per message, 1 more per `name`, 3 to prime the reply, and the function-calling
/// constants for tool definitions. DeepSeek's follow its own template (`DeepSeekPrompt.swift`).
/// Anthropic requests and models without a public tokenizer are estimates, scaled by the model's
/// calibration factor.
public struct PromptCounter: Sendable {
    public struct Count: Sendable, Equatable {
        public var tokens: Int
        public var isEstimate: Bool

        public init(tokens: Int, isEstimate: Bool) {
            self.tokens = tokens
            self.isEstimate = isEstimate
        }
    }

    public let tokenizer: ModelTokenizer
    public let cache: TokenCountCache?

    public init(tokenizer: ModelTokenizer, cache: TokenCountCache? = nil) {
        self.tokenizer = tokenizer
        self.cache = cache
    }

    static let tokensPerMessage = 3
    static let tokensPerName = 1
    static let replyPriming = 3
    /// A fixed allowance for each image part; image pricing depends on size and detail, which the
    /// request alone does not tell (OpenAI's low-detail base cost).
    static let tokensPerImage = 85

    /// Cookbook constants for tool definitions: (function, properties, property key, enum, enum item,
    /// end). gpt-4o and newer (o200k) differ from gpt-4 and gpt-3.5 (cl100k) in the first only.
    struct ToolConstants {
        var functionInit: Int
        var propertiesInit = 3
        var propertyKey = 3
        var enumInit = -3
        var enumItem = 3
        var functionEnd = 12
    }

    var toolConstants: ToolConstants {
        ToolConstants(functionInit: tokenizer.encoding.name == "cl100k_base" ? 10 : 7)
    }

    func text(_ s: String) -> Int {
        if let cache { return cache.count(s, encoding: tokenizer.encoding) }
        return tokenizer.encoding.count(s)
    }

    public func count(endpoint: APIEndpoint, json: JSONValue) -> Count {
        let raw: Int
        var templateEstimate = false
        switch endpoint {
        case .chatCompletions where tokenizer.encoding.name == "deepseek_v3":
            (raw, templateEstimate) = deepseekChat(
                messages: json["messages"]?.arrayValue ?? [], tools: json["tools"]?.arrayValue ?? [])
        case .chatCompletions:
            raw = chat(messages: json["messages"]?.arrayValue ?? []) + tools(json["tools"]?.arrayValue ?? [])
        case .completions:
            raw = strings(json["prompt"])
        case .embeddings:
            raw = strings(json["input"])
        case .responses:
            var n = json["instructions"]?.stringValue.map { text($0) + Self.tokensPerMessage } ?? 0
            if let input = json["input"]?.stringValue {
                n += Self.tokensPerMessage + text(input) + Self.replyPriming
            } else {
                n += chat(messages: json["input"]?.arrayValue ?? [])
            }
            raw = n + tools(json["tools"]?.arrayValue ?? [])
        case .messages:
            var n = 0
            if let system = json["system"] { n += content(system) + Self.tokensPerMessage }
            n += chat(messages: json["messages"]?.arrayValue ?? [])
            for tool in json["tools"]?.arrayValue ?? [] {
                n += text(tool["name"]?.stringValue ?? "") + text(tool["description"]?.stringValue ?? "")
                if let schema = tool["input_schema"] { n += text(JSONWriter.serialize(schema)) }
            }
            raw = n
        }
        let estimate = tokenizer.isEstimate || endpoint == .messages || templateEstimate
        return Count(tokens: estimate ? tokenizer.calibrated(raw) : raw, isEstimate: estimate)
    }

    /// Strings, arrays of strings, or token-id arrays (which count as their length).
    func strings(_ value: JSONValue?) -> Int {
        switch value {
        case .string(let s)?: return text(s)
        case .array(let items)?:
            if items.allSatisfy({ $0.intValue != nil }) { return items.count }
            return items.reduce(0) { $0 + strings($1) }
        default: return 0
        }
    }

    /// Message content: a string, or parts (`text`, images, tool results).
    func content(_ value: JSONValue) -> Int {
        switch value {
        case .string(let s): return text(s)
        case .array(let parts):
            return parts.reduce(0) { total, part in
                if let t = part["text"]?.stringValue { return total + text(t) }
                switch part["type"]?.stringValue {
                case "image_url", "image", "input_image": return total + Self.tokensPerImage
                case "tool_result": return total + (part["content"].map(content) ?? 0)
                case "tool_use":
                    return total + text(part["name"]?.stringValue ?? "")
                        + (part["input"].map { text(JSONWriter.serialize($0)) } ?? 0)
                default: return total
                }
            }
        default: return 0
        }
    }

    /// The cookbook's message formula, extended to content parts and tool calls.
    func chat(messages: [JSONValue]) -> Int {
        var n = 0
        for message in messages {
            n += Self.tokensPerMessage
            for (key, value) in message.objectValue ?? [] {
                switch key {
                case "content": n += content(value)
                case "tool_calls":
                    for call in value.arrayValue ?? [] {
                        n += text(call["function"]?["name"]?.stringValue ?? "")
                        n += text(call["function"]?["arguments"]?.stringValue ?? "")
                    }
                default:
                    if let s = value.stringValue { n += text(s) }
                    if key == "name" { n += Self.tokensPerName }
                }
            }
        }
        return messages.isEmpty ? 0 : n + Self.replyPriming
    }

    /// The cookbook's function-calling formula for tool definitions.
    func tools(_ tools: [JSONValue]) -> Int {
        let functions = tools.compactMap { $0["function"] ?? ($0["name"] != nil ? $0 : nil) }
        guard !functions.isEmpty else { return 0 }
        let k = toolConstants
        var n = 0
        for function in functions {
            n += k.functionInit
            var description = function["description"]?.stringValue ?? ""
            if description.hasSuffix(".") { description.removeLast() }
            n += text((function["name"]?.stringValue ?? "") + ":" + description)
            let properties = function["parameters"]?["properties"]?.objectValue ?? []
            if !properties.isEmpty {
                n += k.propertiesInit
                for (name, property) in properties {
                    n += k.propertyKey
                    if let options = property["enum"]?.arrayValue {
                        n += k.enumInit
                        for option in options {
                            n += k.enumItem + text(option.stringValue ?? JSONWriter.serialize(option))
                        }
                    }
                    var propertyDescription = property["description"]?.stringValue ?? ""
                    if propertyDescription.hasSuffix(".") { propertyDescription.removeLast() }
                    n += text("\(name):\(property["type"]?.stringValue ?? ""):\(propertyDescription)")
                }
            }
        }
        return n + k.functionEnd
    }
}
