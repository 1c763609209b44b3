/// A public model name as clients see it, and where the gateway sends it.
public struct ModelRoute: Sendable, Equatable {
    /// The name clients put in `model`.
    public var name: String
    public var provider: String
    /// The name the upstream expects; the gateway rewrites `model` when it differs.
    public var upstreamModel: String
    /// The tokenizer encoding used to count this model's tokens (exact, or an estimate when the model's
    /// own tokenizer is not public).
    public var tokenizer: String
    /// Multiplier (per mille) applied to counts from an estimate encoding; 1000 for exact encodings.
    public var calibrationPerMille: Int
    /// Key into the price book.
    public var priceID: String
    /// The most output tokens one request may ask for (`max_tokens` and its kin); more is refused with
    /// 400 before anything is reserved, so no client-supplied count can reach the arithmetic unbounded.
    public var maxOutputTokens: Int
    /// Public models to try, in order, when this one's provider fails before any byte reached the client
    /// (each with its own provider, upstream model, tokenizer and price).
    public var fallbacks: [String] = []
    /// Attempts in all for a request to this model, retries and fallbacks together.
    public var maxAttempts = 3

    /// The cap for a model whose configuration names none: above every current model's real output
    /// limit, far below anything that strains 64-bit money.
    public static let defaultMaxOutputTokens = 131_072

    public init(
        name: String,
        provider: String,
        upstreamModel: String,
        tokenizer: String,
        calibrationPerMille: Int = 1000,
        priceID: String,
        maxOutputTokens: Int = ModelRoute.defaultMaxOutputTokens
    ) {
        self.maxOutputTokens = maxOutputTokens
        self.name = name
        self.provider = provider
        self.upstreamModel = upstreamModel
        self.tokenizer = tokenizer
        self.calibrationPerMille = calibrationPerMille
        self.priceID = priceID
    }
}
