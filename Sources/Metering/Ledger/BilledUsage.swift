/// Which usage a record bills, from what the upstream reported and what the gateway counted.
///
/// The provider's report is what the provider bills, so it wins whenever it is final. A response that
/// completed with no report (a provider that never sends usage) is billed from the local counts. A
/// response that did not complete keeps any prompt-side report (Anthropic's `message_start`) and takes
/// the larger of the reported and locally counted completion, so a cut stream is never billed for less
/// than the client received.
public enum BilledUsage {
    public static func choose(
        reported: Usage?, completed: Bool, localPrompt: Int, localCompletion: Int
    ) -> (Usage, BillingRecord.UsageSource) {
        guard let reported else {
            return (Usage(prompt: localPrompt, completion: localCompletion), .tokenizer)
        }
        if completed || reported.completion >= localCompletion {
            return (reported, .upstream)
        }
        var usage = reported
        usage.completion = localCompletion
        if usage.prompt == 0 { usage.prompt = localPrompt }
        return (usage, .mixed)
    }
}
