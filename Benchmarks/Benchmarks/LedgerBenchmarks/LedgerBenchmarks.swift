import Benchmark
import Foundation
import Gateway
import Metering

/// What metering costs a request: the meter over a streamed answer, settlement, and the ledger commit
/// (alone, and shared by concurrent writers through group commit).
enum Fixtures {
    static let o200k = try! TokenEncoding.named("o200k_base")

    /// A 24-word OpenAI stream in 8 chunks with a final usage chunk, as the gateway relays it.
    static let stream: [[UInt8]] = {
        var events: [String] = []
        let words = "Metering is the art of counting what you cannot see: tokens, cents, and invoices alike."
            .split(separator: " ")
        for piece in stride(from: 0, to: words.count, by: 2) {
            let text = words[piece..<min(piece + 2, words.count)].joined(separator: " ") + " "
            events.append(
                #"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\#(text)"}}],"usage":null}"#
                    + "\n\n")
        }
        events.append(#"data: {"id":"c","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":18}}"# + "\n\n")
        events.append("data: [DONE]\n\n")
        return events.map { Array($0.utf8) }
    }()

    static let draft = BillingDraft(
        requestID: "req_bench", tenantID: "ten_bench", keyID: "key_bench", startedAt: Date(),
        endpoint: "/v1/chat/completions", model: "m", upstreamModel: "m", provider: "p", stream: true,
        prompt: .init(tokens: 20, isEstimate: false),
        price: PriceEntry(
            id: "m@2026", effectiveFrom: .distantPast, currency: "USD", input: 2_500_000_000, output: 10_000_000_000))

    static func record() -> BillingRecord {
        var meter = UsageMeter(endpoint: .chatCompletions, streaming: true, encoding: o200k)
        meter.feed(stream[0])
        return draft.settle(
            status: .completed, httpStatus: 200, upstreamStatus: 200, meter: meter, endedAt: Date(), firstByteAt: Date()
        )
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 100_000)
    admitBenchmarks()

    Benchmark("meter + settle one streamed response (9 events, usage stripped)") { benchmark in
        for _ in benchmark.scaledIterations {
            var meter = ResponseMeter(
                endpoint: .chatCompletions, streaming: true, encoding: Fixtures.o200k, stripInjectedUsage: true)
            for chunk in Fixtures.stream { blackHole(meter.feed(chunk)) }
            blackHole(meter.finish())
            blackHole(
                Fixtures.draft.settle(
                    status: .completed, httpStatus: 200, upstreamStatus: 200, meter: meter.usage, endedAt: Date(),
                    firstByteAt: nil))
        }
    }

    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-bench-\(UUID())").path
    let store = try! GatewayStore(dataDirectory: directory)
    let ledger = SQLiteLedger(store: store)
    let record = Fixtures.record()

    Benchmark(
        "ledger commit, 1 writer (one sync per record)",
        configuration: .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(3), maxIterations: 2000)
    ) { benchmark in
        for _ in benchmark.scaledIterations {
            var r = record
            r.id = BillingRecord.newID()
            try await ledger.append(r)
        }
    }

    for writers in [16, 64, 256] {
        Benchmark(
            "ledger commit, \(writers) concurrent writers, 1024 records per iteration",
            configuration: .init(
                metrics: [.wallClock, .throughput], timeUnits: .milliseconds, maxDuration: .seconds(5),
                maxIterations: 50)
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for w in 0..<writers {
                        group.addTask {
                            for _ in 0..<(1024 / writers) + (w < 1024 % writers ? 1 : 0) {
                                var r = record
                                r.id = BillingRecord.newID()
                                try await ledger.append(r)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
        }
    }
}

/// The admit stage's own cost: one admit and one settle on a tenant with free quota, a budget and
/// rate limits (the lock and the store are not included; they add one uncontended mutex).
let admitBenchmarks: @Sendable () -> Void = {
    let plan = Plan(
        name: "bench",
        freeQuota: FreeQuota(
            unit: .tokens, period: .month, schedule: [.init(year: 2025, month: 1, day: 1, amount: 1_000_000_000)]),
        budget: Budget(limit: Money(nanos: 1_000_000_000_000, currency: "USD"), period: .month),
        tenantLimits: RateLimits(requestsPerMinute: 100_000_000, tokensPerMinute: Int(Int32.max)),
        keyLimits: RateLimits(concurrent: 1000))
    let tenant = TenantContext(
        tenantID: "ten", keyID: "key", timeZone: TimeZone(identifier: "Asia/Shanghai")!, createdAt: Date(), plan: plan)
    let convert: (Money, String) -> Money? = { m, c in m.currency == c ? m : nil }
    let usage = Usage(prompt: 120, completion: 80)
    Benchmark("admit + settle (free quota, budget, rate limits)") { benchmark in
        var engine = PolicyEngine()
        let now = Date()
        for _ in benchmark.scaledIterations {
            let request = AdmissionRequest(
                model: "m", estimate: Usage(prompt: 120, completion: 256), requestedMaxOutput: 256,
                price: Fixtures.draft.price, now: now)
            guard case .admitted(let r, _) = engine.admit(tenant, request, convert: convert) else { continue }
            blackHole(engine.settle(r, actual: usage, cost: Fixtures.draft.price!.cost(of: usage), convert: convert))
        }
    }
}
