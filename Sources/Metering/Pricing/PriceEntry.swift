import Foundation

/// One price of one model, in force from `effectiveFrom` until the next entry's date.
///
/// Rates are nano-units of `currency` per million tokens. Cached input, cache writes and reasoning
/// default to the input, input and output rates when the provider does not price them apart.
public struct PriceEntry: Sendable, Equatable {
    /// Stable identifier that a billing record names: `<price id>@<effective date>`.
    public var id: String
    public var effectiveFrom: Date
    public var currency: String
    public var input: Int64
    public var cachedInput: Int64?
    public var cacheWrite: Int64?
    public var output: Int64
    public var reasoning: Int64?

    public init(
        id: String, effectiveFrom: Date, currency: String, input: Int64, cachedInput: Int64? = nil,
        cacheWrite: Int64? = nil, output: Int64, reasoning: Int64? = nil
    ) {
        self.id = id
        self.effectiveFrom = effectiveFrom
        self.currency = currency
        self.input = input
        self.cachedInput = cachedInput
        self.cacheWrite = cacheWrite
        self.output = output
        self.reasoning = reasoning
    }

    /// The cost of `usage`, computed once, exactly, with one rounding.
    ///
    /// Rounding rule: Σ tokens × rate over the components (uncached input, cached input, cache
    /// writes, output, reasoning) is an exact integer in nano-units × 10⁶; it is divided by 10⁶ once,
    /// rounding half up, to whole nano-units. Records are integers, so any sum of records is exact and
    /// an invoice total equals the sum of its rows to the last nano-unit. Throws when the cost does
    /// not fit in 64 bits (about 9.2 billion units of the currency), which no real usage reaches.
    public func cost(of usage: Usage) throws(ArithmeticOverflow) -> Money {
        let uncached = max(
            0, usage.prompt.saturatingSubtracting(usage.cachedPrompt).saturatingSubtracting(usage.cacheWrite))
        let reasoningApart = reasoning != nil
        let plainOutput =
            reasoningApart ? max(0, usage.completion.saturatingSubtracting(usage.reasoning)) : usage.completion
        // Each term is below 2^126 (Int64 × Int64) and there are five, so the Int128 sum cannot wrap.
        var total: Int128 = 0
        total += Int128(uncached) * Int128(input)
        total += Int128(usage.cachedPrompt) * Int128(cachedInput ?? input)
        total += Int128(usage.cacheWrite) * Int128(cacheWrite ?? input)
        total += Int128(plainOutput) * Int128(output)
        if let reasoning { total += Int128(usage.reasoning) * Int128(reasoning) }
        let rounded = (total + 500_000) / 1_000_000
        guard let nanos = Int64(exactly: rounded), nanos >= 0 else {
            throw ArithmeticOverflow("the cost of \(usage.prompt) prompt and \(usage.completion) completion tokens")
        }
        return Money(nanos: nanos, currency: currency)
    }
}
