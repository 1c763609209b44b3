/// Error bodies in the format each API's clients parse.
///
/// OpenAI: `{"error": {"message", "type", "param", "code"}}`.
/// Anthropic: `{"type": "error", "error": {"type", "message"}}`.
public enum ErrorBody {
    public static func render(
        dialect: APIDialect,
        status: Int,
        message: String,
        openAIType: String? = nil,
        code: String? = nil,
        param: String? = nil
    ) -> String {
        switch dialect {
        case .openai:
            let type = openAIType ?? defaultOpenAIType(status: status)
            return JSONWriter.serialize(
                .object([
                    (
                        "error",
                        .object([
                            ("message", .string(message)),
                            ("type", .string(type)),
                            ("param", param.map(JSONValue.string) ?? .null),
                            ("code", code.map(JSONValue.string) ?? .null),
                        ])
                    )
                ]))
        case .anthropic:
            return JSONWriter.serialize(
                .object([
                    ("type", "error"),
                    (
                        "error",
                        .object([("type", .string(anthropicType(status: status))), ("message", .string(message))])
                    ),
                ]))
        }
    }

    static func defaultOpenAIType(status: Int) -> String {
        switch status {
        case 401: return "invalid_request_error"
        case 403: return "permission_error"
        case 404: return "invalid_request_error"
        case 429: return "rate_limit_error"
        case 400..<500: return "invalid_request_error"
        default: return "server_error"
        }
    }

    /// Anthropic's documented error types by status.
    public static func anthropicType(status: Int) -> String {
        switch status {
        case 400: return "invalid_request_error"
        case 401: return "authentication_error"
        case 402: return "billing_error"
        case 403: return "permission_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 504: return "timeout_error"
        case 529: return "overloaded_error"
        case 400..<500: return "invalid_request_error"
        default: return "api_error"
        }
    }
}
