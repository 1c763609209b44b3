/// The human-readable text of a request: what a user wrote, in order.
///
/// Used where only text matters (the mock provider's deterministic replies); exact billing-grade counts
/// with per-message overheads come from the tokenizer's chat counter.
public enum PromptText {
    public static func extract(endpoint: APIEndpoint, json: JSONValue) -> [String] {
        var out: [String] = []
        switch endpoint {
        case .chatCompletions, .messages:
            if let system = json["system"] { collect(system, into: &out) }
            for message in json["messages"]?.arrayValue ?? [] {
                if let content = message["content"] { collect(content, into: &out) }
            }
        case .completions:
            if let prompt = json["prompt"] { collect(prompt, into: &out) }
        case .embeddings:
            if let input = json["input"] { collect(input, into: &out) }
        case .responses:
            if let instructions = json["instructions"] { collect(instructions, into: &out) }
            if let input = json["input"] {
                if input.arrayValue != nil {
                    for item in input.arrayValue ?? [] {
                        if let content = item["content"] {
                            collect(content, into: &out)
                        } else {
                            collect(item, into: &out)
                        }
                    }
                } else {
                    collect(input, into: &out)
                }
            }
        }
        return out
    }

    /// Strings, arrays of strings, and content parts of the form `{"type": "text", "text": …}`.
    private static func collect(_ value: JSONValue, into out: inout [String]) {
        switch value {
        case .string(let s): out.append(s)
        case .array(let items): for item in items { collect(item, into: &out) }
        case .object:
            if let text = value["text"]?.stringValue { out.append(text) }
        default: break
        }
    }
}
