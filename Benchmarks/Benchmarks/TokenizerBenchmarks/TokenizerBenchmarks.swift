import Benchmark
import Metering

/// Inputs of about 256 KiB each: prose, Chinese, code, and the no-whitespace worst cases.
enum Inputs {
    static let size = 256 * 1024

    static func repeated(_ unit: String) -> String {
        var s = ""
        s.reserveCapacity(size + unit.utf8.count)
        while s.utf8.count < size { s += unit }
        return s
    }

    static let english = repeated(
        "The quick brown fox jumps over the lazy dog. It wasn't the first time, and it won't be the last. "
            + "Metering is the art of counting what you can't see: tokens, cents, and the occasional invoice.\n")
    static let chinese = repeated("大语言模型的价格在二零二四年经历了价格战，到了二零二六年部分价格上涨了百分之四百。计量网关负责统计每个租户的用量。\n")
    static let code = repeated(
        "func fibonacci(_ n: Int) -> Int {\n    guard n > 1 else { return n }\n    return fibonacci(n - 1) + fibonacci(n - 2)\n}\n"
    )
    static let letters = String(repeating: "a", count: size)
    static let cjkRun = repeated("的一是不了人我在有他这为之大来以个中上们")
    static let all: [(String, String)] = [
        ("english", english), ("chinese", chinese), ("code", code), ("a-run", letters), ("cjk-run", cjkRun),
    ]
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        maxDuration: .seconds(2),
        maxIterations: 200
    )

    for name in TokenEncoding.names {
        let encoding = try! TokenEncoding.named(name)
        for (label, text) in Inputs.all {
            Benchmark("count \(name) \(label) 256KiB") { benchmark in
                for _ in benchmark.scaledIterations {
                    blackHole(encoding.count(text))
                }
            }
        }
    }

    let o200k = try! TokenEncoding.named("o200k_base")
    let deltas = Array(Inputs.english.utf8).chunks(of: 7)
    Benchmark("streaming counter, 7-byte deltas, 256KiB") { benchmark in
        for _ in benchmark.scaledIterations {
            var counter = StreamingTokenCounter(encoding: o200k)
            for delta in deltas { counter.append(bytes: delta) }
            blackHole(counter.finalCount)
        }
    }

    let tokenizer = ModelTokenizer(encoding: o200k, isEstimate: false)
    let history = JSONValue.object([
        (
            "messages",
            .array(
                (0..<50).map { i in
                    .object([
                        ("role", i % 2 == 0 ? "user" : "assistant"),
                        ("content", .string(Inputs.english.prefix(2000) + " turn \(i)")),
                    ])
                })
        )
    ])
    let cache = TokenCountCache()
    Benchmark("prompt count, 50-message agent history, cached") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(
                PromptCounter(tokenizer: tokenizer, cache: cache).count(endpoint: .chatCompletions, json: history))
        }
    }
    Benchmark("prompt count, 50-message agent history, uncached") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(PromptCounter(tokenizer: tokenizer).count(endpoint: .chatCompletions, json: history))
        }
    }
}

extension Array {
    func chunks(of n: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: n).map { self[$0..<Swift.min($0 + n, count)] }
    }
}
