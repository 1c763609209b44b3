import Foundation

/// One entry of `billing_sinks:` in `policies/gateway.yaml`: where billing records are pushed, in which
/// format, and the secret it needs (from the environment or a file, as provider keys are).
public struct BillingSinkConfig: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// CloudEvents 1.0 JSON, batched (`application/cloudevents-batch+json`): OpenMeter, Kong.
        case cloudevents
        /// Stripe meter events (`POST /v1/billing/meter_events`, form-encoded, one per record).
        case stripe
        /// The record as JSON, signed with HMAC-SHA256 over the timestamp and the body.
        case webhook
    }

    /// What a Stripe meter event's `payload[value]` carries.
    public enum StripeValue: String, Sendable, CaseIterable {
        /// The charged (paid) cost in nano-units of its currency: exact (price the meter per 10⁻⁹ unit
        /// with a decimal unit amount). The default.
        case chargedNanos = "charged_nanos"
        /// The charged cost in the currency's minor units (cents, fen), rounded half up per record: a
        /// request cheaper than half a cent sends nothing. Only for meters that cannot take finer units.
        case chargedMinorUnits = "charged_minor_units"
        /// Prompt plus completion tokens.
        case tokens
    }

    public var name: String
    public var kind: Kind
    /// The endpoint: the ingest URL (cloudevents, webhook) or Stripe's API base (`https://api.stripe.com`).
    public var url: String
    /// A bearer token (cloudevents, stripe) or the signing secret (webhook).
    public var secretEnv: String?
    public var secretFile: String?
    /// CloudEvents `source` and `type`.
    public var source = "llm-metering-gateway"
    public var eventType = "gateway.billing.record"
    /// Stripe: the meter's `event_name`, and what `value` carries.
    public var eventName: String?
    public var value: StripeValue = .chargedNanos
    /// The currency the Stripe meter counts in: records charged in another are dead-lettered.
    public var currency: String?
    /// Records per request (CloudEvents), or per round of requests sent together (Stripe and webhooks
    /// send one record per request).
    public var batchSize = 100
    public var timeoutMilliseconds = 10_000

    public init(name: String, kind: Kind, url: String) {
        self.name = name
        self.kind = kind
        self.url = url
    }

    static func parse(_ field: YAMLField) throws(ConfigError) -> BillingSinkConfig {
        _ = try field.mapping(allowed: [
            "name", "kind", "url", "secret_env", "secret_file", "source", "type", "event_name", "value", "currency",
            "batch_size", "timeout_ms",
        ])
        let urlField = try field.required("url")
        let url = try urlField.nonEmptyString()
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
            throw urlField.fail("expected an http:// or https:// URL")
        }
        var sink = BillingSinkConfig(
            name: try field.required("name").nonEmptyString(), kind: try field.required("kind").oneOf(Kind.self),
            url: url)
        sink.secretEnv = try field.optional("secret_env")?.nonEmptyString()
        sink.secretFile = try field.optional("secret_file")?.nonEmptyString()
        if let s = field.optional("source") { sink.source = try s.nonEmptyString() }
        if let t = field.optional("type") { sink.eventType = try t.nonEmptyString() }
        sink.eventName = try field.optional("event_name")?.nonEmptyString()
        if let v = field.optional("value") { sink.value = try v.oneOf(StripeValue.self) }
        sink.currency = try field.optional("currency")?.nonEmptyString()
        if let b = field.optional("batch_size") { sink.batchSize = try b.int(range: 1...1_000) }
        if let t = field.optional("timeout_ms") { sink.timeoutMilliseconds = try t.int(range: 100...600_000) }
        switch sink.kind {
        case .stripe:
            guard sink.eventName != nil else { throw field.fail("a stripe sink needs event_name (its meter's)") }
            guard sink.secretEnv != nil || sink.secretFile != nil else {
                throw field.fail("a stripe sink needs secret_env or secret_file (the Stripe secret key)")
            }
        case .webhook:
            guard sink.secretEnv != nil || sink.secretFile != nil else {
                throw field.fail("a webhook sink needs secret_env or secret_file (its signing secret)")
            }
        case .cloudevents: break
        }
        return sink
    }

    static func parseList(_ field: YAMLField) throws(ConfigError) -> [BillingSinkConfig] {
        var sinks: [BillingSinkConfig] = []
        for item in try field.sequence() {
            let sink = try parse(item)
            guard !sinks.contains(where: { $0.name == sink.name }) else {
                throw item.fail("billing sink '\(sink.name)' is defined twice")
            }
            sinks.append(sink)
        }
        return sinks
    }
}
