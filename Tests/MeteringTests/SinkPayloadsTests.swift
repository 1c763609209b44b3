import Foundation
import Metering
import Testing

@Suite("Billing sink payloads")
struct SinkPayloadsTests {
    static func record(charged: Int64, currency: String = "USD") -> BillingRecord {
        var r = BillingRecord(
            id: "rec_1", requestID: "req_1", tenantID: "ten_1", keyID: "k",
            startedAt: Date(timeIntervalSince1970: 1_796_000_000),
            endedAt: Date(timeIntervalSince1970: 1_796_000_001), timeToFirstTokenMs: nil,
            endpoint: "/v1/chat/completions",
            model: "m", upstreamModel: "m", provider: "p", stream: false, status: .completed, httpStatus: 200,
            error: nil,
            usage: Usage(prompt: 1_000, completion: 200), usageSource: .upstream, localPromptTokens: 1_000,
            localCompletionTokens: 200, localIsEstimate: false, priceEntry: "m@0",
            cost: Money(nanos: charged, currency: currency))
        r.charged = Money(nanos: charged, currency: currency)
        return r
    }

    static func form(_ text: String) -> [String: String] {
        Dictionary(
            uniqueKeysWithValues: text.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding! }
                return (parts[0], parts[1])
            })
    }

    @Test("Stripe: charged_nanos is exact even below a cent; minor units round half up and drop what rounds to 0")
    func stripeValues() throws {
        let cheap = Self.record(charged: 4_000_000)  // 0.004 USD
        let exact = try #require(
            SinkPayloads.stripeMeterEvent(cheap, customerID: "cus_1", eventName: "llm", value: .chargedNanos))
        let fields = Self.form(exact)
        #expect(fields["payload[value]"] == "4000000" && fields["payload[stripe_customer_id]"] == "cus_1")
        #expect(fields["identifier"] == "rec_1" && fields["timestamp"] == "1796000000" && fields["event_name"] == "llm")
        #expect(exact.contains("payload%5Bvalue%5D="))
        #expect(SinkPayloads.stripeMeterEvent(cheap, customerID: "c", eventName: "e", value: .chargedMinorUnits) == nil)
        #expect(SinkPayloads.minorUnits(Money(nanos: 5_000_000, currency: "USD")) == 1)
        #expect(SinkPayloads.minorUnits(Money(nanos: 4_999_999, currency: "USD")) == 0)
        #expect(SinkPayloads.minorUnits(Money(nanos: 1_500_000_000, currency: "JPY")) == 2)
        let tokens = try #require(SinkPayloads.stripeMeterEvent(cheap, customerID: "c", eventName: "e", value: .tokens))
        #expect(Self.form(tokens)["payload[value]"] == "1200")
    }

    @Test("CloudEvents: one event per record, the record's exported columns as data")
    func cloudEvents() throws {
        let body = SinkPayloads.cloudEventsBatch(
            [(Self.record(charged: 1), "Tenant \"one\"")], source: "gw", type: "gateway.billing.record")
        let json = try JSONReader.parse(Array(body.utf8))
        guard case .array(let events) = json, let event = events.first else {
            Issue.record("not an array")
            return
        }
        #expect(event["id"] == .string("rec_1") && event["subject"] == .string("ten_1"))
        #expect(event["specversion"] == .string("1.0") && event["source"] == .string("gw"))
        #expect(event["data"]?["record_id"] == .string("rec_1"))
        #expect(event["data"]?["tenant_name"] == .string("Tenant \"one\""))
        #expect(event["time"] == event["data"]?["started_at"])
    }
}
