/// DeepSeek's chat template (DeepSeek-V3.1's, which deepseek-chat and deepseek-reasoner serve):
///
///     <｜begin▁of▁sentence｜>{system prompts, joined by "\n\n"}
///     <｜User｜>{user}<｜Assistant｜></think>{answer}<｜end▁of▁sentence｜>
///     <｜User｜>{user}<｜Assistant｜></think>
///
/// An assistant turn keeps only what follows its first `</think>`. Tool calls are
/// `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{name}<｜tool▁sep｜>{arguments}<｜tool▁call▁end｜>…
/// <｜tool▁calls▁end｜><｜end▁of▁sentence｜>`, a tool result
/// `<｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>`. After a user turn the prompt ends with
/// `<｜Assistant｜>` and `</think>` (`<think>` when thinking): two tokens either way.
///
/// Every marker is an added token, and the text between two of them is pre-tokenized on its own, so
/// the prompt's count is the markers plus each stretch of text counted alone: for the system and a
/// user message ("You are a helpful assistant", "Hi") 1 + 5 + 1 + 1 + 2 = 10, DeepSeek's
/// `prompt_tokens` for that request in its documentation.
///
/// Tool definitions are not in the template: DeepSeek's API writes them into the system prompt in a
/// form it does not publish. They are counted in the model card's "## Tools" form, and make the
/// count an estimate.
extension PromptCounter {
    static let deepseekToolsHeader = "## Tools\nYou have access to the following tools:\n\n"
    static let deepseekToolsFooter =
        "IMPORTANT: ALWAYS adhere to this exact format for tool use:\n"
        + "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments"
        + "<｜tool▁call▁end｜>{{additional_tool_calls}}<｜tool▁calls▁end｜>\n\nWhere:\n"
        + "- `tool_call_name` must be an exact match to one of the available tools\n"
        + "- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n"
        + "- For multiple tool calls, chain them directly without separators or spaces"

    /// The prompt of a chat completion in DeepSeek's template, and whether it is an estimate (tool
    /// definitions present).
    func deepseekChat(messages: [JSONValue], tools: [JSONValue]) -> (tokens: Int, isEstimate: Bool) {
        var systems: [String] = []
        for message in messages where message["role"]?.stringValue == "system" {
            systems.append(Self.plainText(message["content"]))
        }
        let functions = tools.compactMap { $0["function"] ?? ($0["name"] != nil ? $0 : nil) }
        if !functions.isEmpty { systems.append(Self.deepseekToolSection(functions)) }
        var n = 1 + text(systems.joined(separator: "\n\n"))  // <｜begin▁of▁sentence｜>
        var lastWasUser = false
        var afterTool = false
        for message in messages {
            switch message["role"]?.stringValue {
            case "user":
                n += 1 + text(Self.plainText(message["content"]))  // <｜User｜>
                lastWasUser = true
                afterTool = false
            case "assistant":
                if lastWasUser { n += 2 }  // <｜Assistant｜></think>
                lastWasUser = false
                let content = Self.plainText(message["content"])
                if let calls = message["tool_calls"]?.arrayValue {
                    afterTool = false
                    for (index, call) in calls.enumerated() {
                        // The first call follows the content and <｜tool▁calls▁begin｜>.
                        if index == 0 { n += text(content) + 1 }
                        n += 3 + text(call["function"]?["name"]?.stringValue ?? "")
                        n += text(Self.argumentsText(call["function"]?["arguments"]))
                    }
                    n += 2  // <｜tool▁calls▁end｜><｜end▁of▁sentence｜>
                } else {
                    // After tool results the whole content counts; otherwise what follows </think>.
                    var answer = Substring(content)
                    if !afterTool, let close = answer.firstRange(of: "</think>") {
                        answer = answer[close.upperBound...]
                    }
                    n += text(String(answer)) + 1  // <｜end▁of▁sentence｜>
                    afterTool = false
                }
            case "tool":
                n += 2 + text(Self.plainText(message["content"]))  // <｜tool▁output▁begin｜>, …end｜>
                lastWasUser = false
                afterTool = true
            default:
                break
            }
        }
        if lastWasUser { n += 2 }  // <｜Assistant｜></think>, or <think> when thinking
        return (n, !functions.isEmpty)
    }

    /// Message content as the template concatenates it: a string, or its text parts run together.
    static func plainText(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s
        case .array(let parts)?: return parts.compactMap { $0["text"]?.stringValue }.joined()
        default: return ""
        }
    }

    /// Tool-call arguments: a JSON string as sent, or an object serialized.
    static func argumentsText(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        return value.stringValue ?? JSONWriter.serialize(value)
    }

    /// The model card's tool section for these function definitions.
    static func deepseekToolSection(_ functions: [JSONValue]) -> String {
        var section = deepseekToolsHeader
        for function in functions {
            section += "### \(function["name"]?.stringValue ?? "")\n"
            section += "Description: \(function["description"]?.stringValue ?? "")\n\n"
            section += "Parameters: \(function["parameters"].map(JSONWriter.serialize) ?? "{}")\n\n"
        }
        return section + deepseekToolsFooter
    }
}
