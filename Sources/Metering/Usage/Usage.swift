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

    /// The most tokens one response may report in any field. An upstream that reports more (or a
    /// negative count) is treated as reporting nothing, and the record bills the local counts: no
    /// model reads or writes a trillion tokens in one response, and bounded counts keep every cost
    /// and counter far from 64-bit overflow.
    public static let maxReportedTokens = 1 << 40

    /// A reported count, if it is a plausible one.
    static func count(_ value: JSONValue?) -> Int? {
        guard let n = value?.intValue, (0...maxReportedTokens).contains(n) else { return nil }
        return n
    }

    /// Whether any field of a usage object holds a number that is not a plausible count.
    static func hasImplausibleCount(_ u: JSONValue, _ fields: [String]) -> Bool {
        fields.contains { name in
            guard let v = u[name], !v.isNull else { return false }
            return count(v) == nil
        }
    }

    /// OpenAI (and compatible) usage objects: chat and completions (`prompt_tokens`/`completion_tokens`),
    /// the Responses API (`input_tokens`/`output_tokens`), embeddings (`prompt_tokens` only). Cached
    /// input comes from `prompt_tokens_details.cached_tokens`, or DeepSeek's `prompt_cache_hit_tokens`.
    public static func openAI(_ u: JSONValue) -> Usage? {
        guard u.objectValue != nil,
            !hasImplausibleCount(u, ["prompt_tokens", "input_tokens", "completion_tokens", "output_tokens"])
        else { return nil }
        let prompt = count(u["prompt_tokens"]) ?? count(u["input_tokens"])
        let completion = count(u["completion_tokens"]) ?? count(u["output_tokens"])
        guard prompt != nil || completion != nil else { return nil }
        // Parts larger than their whole are implausible too; they are capped at the whole.
        let cached =
            count(u["prompt_tokens_details"]?["cached_tokens"])
            ?? count(u["input_tokens_details"]?["cached_tokens"])
            ?? count(u["prompt_cache_hit_tokens"]) ?? 0
        let reasoning =
            count(u["completion_tokens_details"]?["reasoning_tokens"])
            ?? count(u["output_tokens_details"]?["reasoning_tokens"]) ?? 0
        return Usage(
            prompt: prompt ?? 0, completion: completion ?? 0, cachedPrompt: min(cached, prompt ?? 0),
            reasoning: min(reasoning, completion ?? 0))
    }

    /// Anthropic usage: `input_tokens` excludes cache reads and writes, which are reported apart.
    public static func anthropic(_ u: JSONValue) -> Usage? {
        let fields = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        guard u.objectValue != nil, u["input_tokens"] != nil || u["output_tokens"] != nil,
            !hasImplausibleCount(u, fields)
        else { return nil }
        let read = count(u["cache_read_input_tokens"]) ?? 0
        let write = count(u["cache_creation_input_tokens"]) ?? 0
        // Three counts of at most 2^40 each: the sum cannot overflow.
        return Usage(
            prompt: (count(u["input_tokens"]) ?? 0) + read + write, completion: count(u["output_tokens"]) ?? 0,
            cachedPrompt: read, cacheWrite: write)
    }
}
