/// The wire format a client speaks; errors and rejections are written in it.
public enum APIDialect: Sendable {
    case openai
    case anthropic

    /// Paths under `/v1/messages` belong to Anthropic's API; everything else under `/v1` to OpenAI's.
    public static func of(path: String) -> APIDialect {
        path == "/v1/messages" || path.hasPrefix("/v1/messages/") ? .anthropic : .openai
    }
}

/// The proxied endpoints.
public enum APIEndpoint: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    case embeddings = "/v1/embeddings"
    case responses = "/v1/responses"
    case messages = "/v1/messages"

    public var dialect: APIDialect { self == .messages ? .anthropic : .openai }

    /// The path below a provider's versioned base URL (`https://api.openai.com/v1` + `/chat/completions`).
    public var upstreamPath: String { String(rawValue.dropFirst(3)) }

    /// Whether the endpoint can stream its answer.
    public var canStream: Bool { self != .embeddings }
}
