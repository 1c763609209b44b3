/// Which encoding counts a model's tokens, and whether the count is exact or an estimate.
///
/// OpenAI's, Qwen's and DeepSeek's tokenizers are public, so their counts are exact. Claude, Doubao,
/// GLM and Kimi do not publish theirs (or not in a form we ship): the configuration names an estimate
/// encoding and a calibration factor, and every count for them says it is an estimate.
public struct ModelTokenizer: Sendable {
    public let encoding: TokenEncoding
    public let isEstimate: Bool
    /// Applied to estimate counts, in thousandths (1150 = ×1.15); 1000 for exact counts.
    public let calibrationPerMille: Int

    /// The public encoding of a model family, by the upstream model name; nil when not public.
    public static func publicEncoding(forModel model: String) -> String? {
        let name = model.lowercased().split(separator: "/").last.map(String.init) ?? model.lowercased()
        let o200k = ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4"]
        let cl100k = ["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada-002"]
        if o200k.contains(where: { name.hasPrefix($0) }) { return "o200k_base" }
        if cl100k.contains(where: { name.hasPrefix($0) }) { return "cl100k_base" }
        if name.hasPrefix("qwen") { return "qwen" }
        if name.hasPrefix("deepseek") { return "deepseek_v3" }
        return nil
    }

    /// The tokenizer for a routed model: exact when its family's public encoding is the configured one.
    public static func resolve(upstreamModel: String, configuredEncoding: String, calibrationPerMille: Int) throws
        -> ModelTokenizer
    {
        let encoding = try TokenEncoding.named(configuredEncoding)
        let exact = publicEncoding(forModel: upstreamModel) == configuredEncoding
        return ModelTokenizer(
            encoding: encoding, isEstimate: !exact, calibrationPerMille: exact ? 1000 : calibrationPerMille)
    }

    public init(encoding: TokenEncoding, isEstimate: Bool, calibrationPerMille: Int = 1000) {
        self.encoding = encoding
        self.isEstimate = isEstimate
        self.calibrationPerMille = calibrationPerMille
    }

    /// Scales a raw count by the calibration factor, rounding up (a reservation should not fall short).
    public func calibrated(_ raw: Int) -> Int {
        calibrationPerMille == 1000 ? raw : (raw * calibrationPerMille + 999) / 1000
    }
}
