import Foundation
import Metering
import TestSupport
import Testing

@Suite("Token counting: chats, streams, registry and cache")
struct TokenCountingTests {
    static let cookbookMessages = try! JSONReader.parse(
        #"""
        [{"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
         {"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
         {"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
         {"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
         {"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
         {"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]
        """#)

    @Test("chat messages count as the OpenAI cookbook's example (129 for gpt-4, 124 for gpt-4o)")
    func cookbook() throws {
        let request = JSONValue.object([("messages", Self.cookbookMessages)])
        for (model, expected) in [("gpt-4", 129), ("gpt-4o", 124)] {
            let encoding = ModelTokenizer.publicEncoding(forModel: model)!
            let tokenizer = try ModelTokenizer.resolve(
                upstreamModel: model, configuredEncoding: encoding, calibrationPerMille: 1000)
            let count = PromptCounter(tokenizer: tokenizer).count(endpoint: .chatCompletions, json: request)
            #expect(count == .init(tokens: expected, isEstimate: false), "\(model)")
        }
    }

    @Test("tool definitions add the cookbook's function-calling tokens")
    func tools() throws {
        let tokenizer = try ModelTokenizer.resolve(
            upstreamModel: "gpt-4o", configuredEncoding: "o200k_base", calibrationPerMille: 1000)
        let encoding = tokenizer.encoding
        let request = try JSONReader.parse(
            #"{"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather.","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name."},"unit":{"type":"string","enum":["c","f"],"description":"Unit"}}}}}]}"#
        )
        let messages = 3 + encoding.count("user") + encoding.count("Weather?") + 3
        let tools =
            7 + encoding.count("get_weather:Get the weather") + 3
            + 3 + encoding.count("city:string:City name")
            + 3 - 3 + 3 + encoding.count("c") + 3 + encoding.count("f") + encoding.count("unit:string:Unit") + 12
        let count = PromptCounter(tokenizer: tokenizer).count(endpoint: .chatCompletions, json: request)
        #expect(count.tokens == messages + tools)
    }

    @Test("models map to their public encodings; others are calibrated estimates")
    func registry() throws {
        #expect(ModelTokenizer.publicEncoding(forModel: "gpt-4o-mini") == "o200k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "gpt-4.1") == "o200k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "gpt-5-mini") == "o200k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "o3-mini") == "o200k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "gpt-4-turbo") == "cl100k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "gpt-3.5-turbo") == "cl100k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "text-embedding-3-small") == "cl100k_base")
        #expect(ModelTokenizer.publicEncoding(forModel: "qwen-max") == "qwen")
        #expect(ModelTokenizer.publicEncoding(forModel: "deepseek-chat") == "deepseek_v3")
        #expect(ModelTokenizer.publicEncoding(forModel: "deepseek-reasoner") == "deepseek_v3")
        for model in ["claude-sonnet-4-5", "doubao-seed-1-6", "glm-4.5", "kimi-k2"] {
            #expect(ModelTokenizer.publicEncoding(forModel: model) == nil, "\(model)")
        }
        let claude = try ModelTokenizer.resolve(
            upstreamModel: "claude-sonnet-4-5", configuredEncoding: "o200k_base", calibrationPerMille: 1150)
        #expect(claude.isEstimate)
        #expect(claude.calibrated(100) == 115)
        #expect(claude.calibrated(1) == 2, "estimates round up")
        let request = JSONValue.object([("messages", Self.cookbookMessages)])
        let count = PromptCounter(tokenizer: claude).count(endpoint: .chatCompletions, json: request)
        #expect(count == .init(tokens: (124 * 1150 + 999) / 1000, isEstimate: true))
    }

    static let streamTexts: [String] = [
        "Hello, world! I'm streaming tokens; they're counted as they arrive.",
        "中文流式输出，每个字都要计数。日本語も。한국어도.",
        "emoji 👨‍👩‍👧‍👦 and 👍🏽 split mid-sequence, plus combining é here",
        "  spaces   then\n\nnewlines\r\n and 1234567 digits and don't WON'T",
        "def f(x):\n    return x ** 2  # code\n",
        // Decomposed: qwen's NFC composes a mark with the letter before it, across a settled prefix.
        "cafe\u{301} de\u{301}ja\u{300} vu, na\u{308}ive a\u{301}\u{301}\u{301} b; \u{AC00}\u{11A8} \u{1100}\u{1161} x",
        // A run of printable ASCII with no space, split 64 bytes at a time (data URLs carry such runs).
        "img: data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg== done",
    ]

    @Test("streamed deltas split at every byte count the same as the whole text", arguments: streamTexts)
    func everyByteSplit(_ text: String) throws {
        let bytes = Array(text.utf8)
        for name in TokenEncoding.names {
            let encoding = try TokenEncoding.named(name)
            let expected = encoding.count(text)
            for cut in 0...bytes.count {
                var counter = StreamingTokenCounter(encoding: encoding, settleThreshold: 4)
                counter.append(bytes: bytes[..<cut])
                counter.append(bytes: bytes[cut...])
                #expect(counter.count == expected, "\(name) cut at \(cut)")
                #expect(counter.finalCount == expected)
            }
        }
    }

    @Test("random multi-way splits agree at every step, including while settling", arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func randomSplits(seed: UInt64) throws {
        var rng = SplitMix(seed: seed)
        let text = Self.streamTexts.joined(separator: " ") + String(repeating: " word's", count: 50)
        for name in TokenEncoding.names {
            Self.streamRandomly(text, try TokenEncoding.named(name), &rng, maxDelta: 12, maxThreshold: 64)
        }
    }

    /// Streams `text` in random deltas of 1 to `maxDelta` bytes through a counter with a random settle
    /// threshold (1 to `maxThreshold`), checking after each delta that the count equals counting the
    /// complete characters received so far, and the final count at the end.
    static func streamRandomly(
        _ text: String, _ encoding: TokenEncoding, _ rng: inout SplitMix, maxDelta: UInt64, maxThreshold: UInt64
    ) {
        let bytes = Array(text.utf8)
        var counter = StreamingTokenCounter(encoding: encoding, settleThreshold: Int(rng.next() % maxThreshold) + 1)
        var i = 0
        while i < bytes.count {
            let n = min(bytes.count - i, Int(rng.next() % maxDelta) + 1)
            counter.append(bytes: bytes[i..<(i + n)])
            i += n
            var complete = i
            while complete > 0 && complete < bytes.count && bytes[complete] & 0xC0 == 0x80 { complete -= 1 }
            let expected = encoding.count(String(decoding: bytes[..<complete], as: UTF8.self))
            guard counter.count == expected else {
                let scalars = text.unicodeScalars.map { String($0.value, radix: 16) }
                Issue.record("\(encoding.name) at byte \(i): \(counter.count) tokens, \(expected) expected; \(scalars)")
                return
            }
        }
        #expect(counter.finalCount == encoding.count(text))
    }

    /// Found two ways the settled prefix used to go wrong: counted on its own, two spaces before a
    /// digit were one piece instead of two; and in qwen a mark after the cut composed with the letter
    /// before it.
    @Test("random texts dense with marks, streamed in random deltas, count as the whole text")
    func randomMarkedStreams() throws {
        let alphabet: [String] = [
            "a", "e", "E", "o", "x", " ", "  ", "\n", "\r\n", "\t", "'s", "'", "1", "23", ".", ",", "中", "文", "한",
            "\u{301}", "\u{300}", "\u{308}", "\u{323}", "\u{327}", "\u{1100}", "\u{1161}", "\u{11A8}", "\u{AC00}",
            "\u{F73}", "\u{F71}", "\u{CCA}", "\u{CD5}", "\u{0915}", "\u{093C}", "\u{094D}", "\u{20041}", "👍",
            "\u{1F3FD}", "\u{200D}", "\u{3099}", "か", "\u{212B}", "\u{F900}", "\u{A0}",
        ]
        var rng = SplitMix(seed: 11)
        for name in TokenEncoding.names {
            let encoding = try TokenEncoding.named(name)
            for _ in 0..<150 {
                var text = ""
                for _ in 0..<(20 + Int(rng.next() % 200)) { text += alphabet[Int(rng.next() % UInt64(alphabet.count))] }
                Self.streamRandomly(text, encoding, &rng, maxDelta: 9, maxThreshold: 48)
            }
        }
    }

    @Test("an agent's history is tokenized once: turn N counts only its new messages")
    func prefixCache() throws {
        let cache = TokenCountCache()
        let tokenizer = try ModelTokenizer.resolve(
            upstreamModel: "gpt-4o", configuredEncoding: "o200k_base", calibrationPerMille: 1000)
        let counter = PromptCounter(tokenizer: tokenizer, cache: cache)
        let uncached = PromptCounter(tokenizer: tokenizer)
        var messages: [JSONValue] = []
        for turn in 1...20 {
            let user =
                "Turn \(turn): please read file_\(turn).swift and summarize what changed since the previous turn."
            let tool = String(repeating: "let value\(turn) = compute(\(turn)) // result line\n", count: 40)
            messages.append(.object([("role", "user"), ("content", .string(user))]))
            messages.append(
                .object([("role", "tool"), ("tool_call_id", .string("call_\(turn)")), ("content", .string(tool))]))
            let request = JSONValue.object([("messages", .array(messages))])
            let before = cache.statistics
            let cached = counter.count(endpoint: .chatCompletions, json: request)
            let after = cache.statistics
            #expect(cached == uncached.count(endpoint: .chatCompletions, json: request))
            #expect(after.misses - before.misses == 2, "turn \(turn) tokenizes only its two new long messages")
            #expect(after.hits - before.hits == 2 * (turn - 1))
        }
    }
}
