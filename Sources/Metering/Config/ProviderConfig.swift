/// How the gateway talks to an upstream.
public enum ProviderKind: String, Sendable, CaseIterable {
    /// OpenAI and every OpenAI-compatible API (DeepSeek, DashScope compatible mode, Zhipu, Ark, Moonshot).
    case openai
    /// Anthropic's Messages API.
    case anthropic
    /// The built-in deterministic provider used for demos, tests and benchmarks.
    case mock
}

/// Upstream timeouts. `firstByte` bounds the wait for response headers; `idleRead` bounds each silence
/// while a body streams, so a stalled stream cannot hold a connection forever.
public struct ProviderTimeouts: Sendable, Equatable {
    public var connectMilliseconds: Int
    public var firstByteMilliseconds: Int
    public var idleReadMilliseconds: Int

    public init(
        connectMilliseconds: Int = 5_000, firstByteMilliseconds: Int = 120_000, idleReadMilliseconds: Int = 60_000
    ) {
        self.connectMilliseconds = connectMilliseconds
        self.firstByteMilliseconds = firstByteMilliseconds
        self.idleReadMilliseconds = idleReadMilliseconds
    }
}

/// Behaviour of the built-in mock provider (defaults; a request header can override per call).
public struct MockSettings: Sendable, Equatable {
    /// Words in each generated reply.
    public var replyWords: Int
    /// SSE content chunks in a streamed reply.
    public var streamChunks: Int
    /// Delay between streamed chunks.
    public var chunkDelayMilliseconds: Int

    public init(replyWords: Int = 24, streamChunks: Int = 8, chunkDelayMilliseconds: Int = 0) {
        self.replyWords = replyWords
        self.streamChunks = streamChunks
        self.chunkDelayMilliseconds = chunkDelayMilliseconds
    }
}

public struct ProviderConfig: Sendable, Equatable {
    public var name: String
    public var kind: ProviderKind
    /// Base URL including the API version path, e.g. `https://api.openai.com/v1`.
    public var baseURL: String
    /// Environment variable that holds the provider key; never the key itself.
    public var apiKeyEnv: String?
    /// A file holding the provider key (for secret mounts); read at start.
    public var apiKeyFile: String?
    /// A key pool: several keys of one provider (`api_keys_env`, `api_key_files`), used by least
    /// outstanding requests; each is known by its variable or file name, never its value.
    public var apiKeyEnvs: [String] = []
    public var apiKeyFiles: [String] = []
    /// PEM certificates trusted for this provider's TLS besides the system's roots (a private CA).
    public var tlsCAFile: String?
    public var timeouts: ProviderTimeouts
    public var mock: MockSettings
    /// The member that limits a chat completion's output when the gateway sets one itself:
    /// `max_tokens` (OpenAI-compatible providers) or `max_completion_tokens` (OpenAI's reasoning models
    /// accept only this one).
    public var chatOutputLimitMember = "max_tokens"

    /// The member that caps output on `endpoint`, if it has one.
    public func outputLimitMember(for endpoint: APIEndpoint) -> String? {
        switch endpoint {
        case .chatCompletions: chatOutputLimitMember
        case .completions, .messages: "max_tokens"
        case .responses: "max_output_tokens"
        case .embeddings: nil
        }
    }

    public init(
        name: String,
        kind: ProviderKind,
        baseURL: String = "",
        apiKeyEnv: String? = nil,
        apiKeyFile: String? = nil,
        timeouts: ProviderTimeouts = .init(),
        mock: MockSettings = .init()
    ) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnv = apiKeyEnv
        self.apiKeyFile = apiKeyFile
        self.timeouts = timeouts
        self.mock = mock
    }
}
