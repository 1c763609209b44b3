import Foundation
import Metering
import Testing

@Suite("Metering stage: usage injection and stripping")
struct ResponseMeterTests {
    static let o200k = try! TokenEncoding.named("o200k_base")

    static let injectedStream = """
        data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":null}

        data: {"usage":null,"id":"c","choices":[{"index":0,"delta":{"content":" there"}}]}

        data: {"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}

        data: [DONE]


        """

    static let clientView = """
        data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}

        data: {"id":"c","choices":[{"index":0,"delta":{"content":" there"}}]}

        data: [DONE]


        """

    static func run(_ bytes: [UInt8], cuts: [Int], strip: Bool) -> ([UInt8], ResponseMeter) {
        var meter = ResponseMeter(
            endpoint: .chatCompletions, streaming: true, encoding: o200k, stripInjectedUsage: strip)
        var out: [UInt8] = []
        var start = 0
        for cut in cuts + [bytes.count] {
            let chunk = bytes[start..<cut]
            switch meter.feed(chunk) {
            case .unchanged: out += chunk
            case .replaced(let b): out += b
            }
            start = cut
        }
        out += meter.finish()
        return (out, meter)
    }

    @Test("the client sees the stream without the usage chunk or usage:null, split at every byte; usage is read")
    func strips() {
        let bytes = Array(Self.injectedStream.utf8)
        for cut in 0...bytes.count {
            let (out, meter) = Self.run(bytes, cuts: [cut], strip: true)
            #expect(String(decoding: out, as: UTF8.self) == Self.clientView, "cut at \(cut)")
            #expect(meter.usage.reported == Usage(prompt: 9, completion: 2), "cut at \(cut)")
            #expect(meter.endReached)
            #expect(meter.usage.localCompletionTokens == 2)
        }
    }

    @Test("without injection the bytes pass unchanged")
    func passThrough() {
        let bytes = Array(Self.injectedStream.utf8)
        let (out, meter) = Self.run(bytes, cuts: [7, 100], strip: false)
        #expect(out == bytes)
        #expect(meter.usage.reported == Usage(prompt: 9, completion: 2))
    }

    @Test("CRLF events and a cut stream: partial trailing event is forwarded as received")
    func crlfAndCut() {
        let text = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\r\n\r\ndata: {\"cho"
        let (out, meter) = Self.run(Array(text.utf8), cuts: [10, 61], strip: true)
        #expect(
            String(decoding: out, as: UTF8.self)
                == "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\ndata: {\"cho")
        #expect(!meter.endReached)
        #expect(meter.usage.reported == nil)
    }

    @Test("include_usage is added upstream only when the client did not ask, keeping every other byte")
    func injection() throws {
        func body(_ json: String) throws -> ParsedRequest {
            try RequestParser.parse(endpoint: .chatCompletions, body: Array(json.utf8))
        }
        let plain = try body(#"{"model":"m","stream":true,"messages":[]}"#)
        #expect(plain.needsInjectedUsage)
        #expect(
            String(decoding: plain.upstreamBody(model: "up", requestUsage: true), as: UTF8.self)
                == #"{"stream_options":{"include_usage":true},"model":"up","stream":true,"messages":[]}"#)
        let other = try body(#"{ "model":"m", "stream":true, "stream_options": {"include_obfuscation":false} }"#)
        #expect(
            String(decoding: other.upstreamBody(model: "m", requestUsage: true), as: UTF8.self)
                == #"{ "model":"m", "stream":true, "stream_options": {"include_obfuscation":false,"include_usage":true} }"#
        )
        let asked = try body(#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(!asked.needsInjectedUsage)
        #expect(asked.upstreamBody(model: "m", requestUsage: true) == asked.body)
        #expect(try !body(#"{"model":"m","stream":false}"#).needsInjectedUsage)
    }
}

@Suite("Settlement: which usage is billed, and the record it makes")
struct SettlementTests {
    static let start = Date(timeIntervalSince1970: 1_790_000_000)
    static let price = PriceEntry(
        id: "p@2026-01-01T00:00:00Z", effectiveFrom: Date(timeIntervalSince1970: 0), currency: "CNY",
        input: 2_000_000_000, cachedInput: 500_000_000, output: 8_000_000_000)

    static func draft() -> BillingDraft {
        BillingDraft(
            requestID: "req_1", tenantID: "ten_1", keyID: "key_1", startedAt: start, endpoint: "/v1/chat/completions",
            model: "m", upstreamModel: "m-up", provider: "p", stream: true,
            prompt: .init(tokens: 1000, isEstimate: false), price: price)
    }

    @Test("upstream report wins when final; local counts are kept beside it")
    func upstream() {
        let (usage, source) = BilledUsage.choose(
            reported: Usage(prompt: 1010, completion: 50, cachedPrompt: 512), completed: true, localPrompt: 1000,
            localCompletion: 49)
        #expect(source == .upstream)
        #expect(usage == Usage(prompt: 1010, completion: 50, cachedPrompt: 512))
    }

    @Test("no report: the tokenizer bills prompt estimate and counted completion")
    func tokenizer() {
        let (usage, source) = BilledUsage.choose(
            reported: nil, completed: false, localPrompt: 1000, localCompletion: 7)
        #expect(source == .tokenizer)
        #expect(usage == Usage(prompt: 1000, completion: 7))
    }

    @Test("cut after Anthropic's message_start: prompt from upstream, completion counted locally")
    func mixed() {
        let (usage, source) = BilledUsage.choose(
            reported: Usage(prompt: 900, completion: 1, cachedPrompt: 100), completed: false, localPrompt: 1000,
            localCompletion: 40)
        #expect(source == .mixed)
        #expect(usage == Usage(prompt: 900, completion: 40, cachedPrompt: 100))
    }

    @Test("a record's cost by hand: 488 uncached × 2 + 512 cached × 0.5 + 50 × 8 per million CNY = 0.001632")
    func recordCost() {
        var meter = UsageMeter(endpoint: .chatCompletions, streaming: false, encoding: ResponseMeterTests.o200k)
        meter.feed(
            Array(
                #"{"choices":[{"index":0,"message":{"content":"ok"}}],"usage":{"prompt_tokens":1000,"completion_tokens":50,"prompt_tokens_details":{"cached_tokens":512}}}"#
                    .utf8))
        meter.finish()
        let record = Self.draft().finalRecord(
            status: .completed, httpStatus: 200, upstreamStatus: 200, meter: meter,
            endedAt: Self.start.addingTimeInterval(1.5), firstByteAt: Self.start.addingTimeInterval(0.25))
        // 488×2 = 976, 512×0.5 = 256, 50×8 = 400 → 1632 per million = 0.001632 CNY
        #expect(record.cost == Money(nanos: 1_632_000, currency: "CNY"))
        #expect(record.cost?.decimalString == "0.001632000")
        #expect(record.usageSource == .upstream)
        #expect(record.localCompletionTokens == 1)
        #expect(record.timeToFirstTokenMs == 250)
        #expect(record.priceEntry == "p@2026-01-01T00:00:00Z")
    }

    @Test("upstream errors and rejections cost nothing")
    func zeroCost() {
        var meter = UsageMeter(endpoint: .chatCompletions, streaming: false, encoding: ResponseMeterTests.o200k)
        meter.feed(Array(#"{"error":{"message":"bad"}}"#.utf8))
        meter.finish()
        let failed = Self.draft().finalRecord(
            status: .upstreamError, httpStatus: 400, upstreamStatus: 400, meter: meter, endedAt: Self.start,
            firstByteAt: nil)
        #expect(failed.cost == .zero("CNY"))
        #expect(failed.usage == Usage())
        #expect(failed.usageSource == .none)
        let rejected = Self.draft().rejected(httpStatus: 429, error: "insufficient_quota", at: Self.start)
        #expect(rejected.status == .rejected && rejected.cost == .zero("CNY") && rejected.error == "insufficient_quota")
    }
}
