/// Token usage of one response, as a provider reports it or as the gateway counted it.
///
/// `prompt` includes cached and cache-write tokens (OpenAI's convention); Anthropic's separate counts
/// are added in when read. `completion` includes reasoning tokens.
public struct Usage: Sendable, Equatable {
    public var prompt: Int
    public var completion: Int
    public var cachedPrompt: Int
    public var cacheWrite: Int
    public var reasoning: Int

    public init(prompt: Int = 0, completion: Int = 0, cachedPrompt: Int = 0, cacheWrite: Int = 0, reasoning: Int = 0) {
        self.prompt = prompt
        self.completion = completion
        self.cachedPrompt = cachedPrompt
        self.cacheWrite = cacheWrite
        self.reasoning = reasoning
    }

    /// OpenAI (and compatible) usage objects: chat and completions (`prompt_tokens`/`completion_tokens`),
    /// the Responses API (`input_tokens`/`output_tokens`), embeddings (`prompt_tokens` only). Cached
    /// input comes from `prompt_tokens_details.cached_tokens`, or DeepSeek's `prompt_cache_hit_tokens`.
    public static func openAI(_ u: JSONValue) -> Usage? {
        guard u.objectValue != nil else { return nil }
        let prompt = u["prompt_tokens"]?.intValue ?? u["input_tokens"]?.intValue
        let completion = u["completion_tokens"]?.intValue ?? u["output_tokens"]?.intValue
        guard prompt != nil || completion != nil else { return nil }
        let cached =
            u["prompt_tokens_details"]?["cached_tokens"]?.intValue
            ?? u["input_tokens_details"]?["cached_tokens"]?.intValue
            ?? u["prompt_cache_hit_tokens"]?.intValue ?? 0
        let reasoning =
            u["completion_tokens_details"]?["reasoning_tokens"]?.intValue
            ?? u["output_tokens_details"]?["reasoning_tokens"]?.intValue ?? 0
        return Usage(prompt: prompt ?? 0, completion: completion ?? 0, cachedPrompt: cached, reasoning: reasoning)
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which are reported apart.
    public static func anthropic(_ u: JSONValue) -> Usage? {
        guard u.objectValue != nil, u["input_tokens"] != nil || u["output_tokens"] != nil else { return nil }
        let read = u["cache_read_input_tokens"]?.intValue ?? 0
        let write = u["cache_creation_input_tokens"]?.intValue ?? 0
        return Usage(
            prompt: (u["input_tokens"]?.intValue ?? 0) + read + write, completion: u["output_tokens"]?.intValue ?? 0,
            cachedPrompt: read, cacheWrite: write)
    }
}
