import Foundation
import TestSupport
import Testing

@testable import Metering

/// deepseek_v3 beyond the conformance vectors (`tokenizer_vectors.json`, which hold its cases too): the
/// facts its shortcuts rest on, its two merge routes against each other, added tokens, and DeepSeek's
/// chat template.
@Suite("DeepSeek V3 tokenizer")
struct DeepSeekTokenizerTests {
    static func encoding() throws -> TokenEncoding { try TokenEncoding.named("deepseek_v3") }

    @Test("the vocabulary loads: 128,000 tokens, 127,741 merges, 1,283 added tokens")
    func loads() throws {
        let byteLevel = try #require(try Self.encoding().byteLevel)
        #expect(byteLevel.lefts.count == 127_741)
        #expect(byteLevel.tokens.tokenCount == 127_997)
        #expect(byteLevel.tokenBase == 3)
        #expect(byteLevel.added.contents.count == 1_283)
    }

    /// The encoder takes a piece that is a token as that token without merging
    /// (``PairMerger/encode(_:_:emit:)``): exact only if merging every token's bytes makes it.
    @Test("every token is what merging its own bytes makes")
    func tokensAreReachable() throws {
        let byteLevel = try #require(try Self.encoding().byteLevel)
        var wrong: [Int] = []
        byteLevel.tokens.bytes.withUnsafeBufferPointer { all in
            let merger = PairMerger(vocabulary: byteLevel, tokenBytes: all)
            for rank in 0..<byteLevel.tokens.tokenCount {
                let bytes = Array(byteLevel.tokens.tokenBytes(rank))
                var out: [UInt32] = []
                bytes.withUnsafeBufferPointer { p in
                    if p.count == 1 {
                        out.append(merger.byteTokens[Int(p[0])])
                    } else {
                        merger.mergeShort(p.baseAddress!, p.count) { out.append($0) }
                    }
                }
                if out != [UInt32(rank) + byteLevel.tokenBase] { wrong.append(rank) }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(10))")
    }

    @Test("the scan and the rank buckets merge random pieces alike", arguments: [1, 2, 3, 4])
    func mergeRoutesAgree(seed: UInt64) throws {
        let encoding = try Self.encoding()
        var rng = SplitMix(seed: seed)
        let units = [
            "a", "b", "aa", "ab", "中", "文", "的", "了", "カ", "ー", "x", "Q", "the", "ing", "é", "😀", "/", "=", " ",
        ]
        for _ in 0..<300 {
            var text = ""
            for _ in 0..<(1 + Int(rng.next() % 400)) { text += units[Int(rng.next() % UInt64(units.count))] }
            var scanned: [UInt32] = []
            var bucketed: [UInt32] = []
            encoding.forEachToken(text, options: EncodingOptions(longMergeFrom: .max)) { scanned.append($0) }
            encoding.forEachToken(text, options: EncodingOptions(longMergeFrom: 2)) { bucketed.append($0) }
            #expect(scanned == bucketed, "\(text)")
            #expect(encoding.decodeBytes(scanned.map(Int.init)) == Array(text.utf8))
        }
    }

    @Test("added tokens are one token wherever they appear, the longest first")
    func addedTokens() throws {
        let encoding = try Self.encoding()
        #expect(encoding.encode("<think>") == [128_821])
        #expect(encoding.encode("a</think>b") == [67, 128_822, 68])
        #expect(encoding.encode("<｜User｜><｜Assistant｜>") == [128_803, 128_804])
        #expect(encoding.encode("<｜end▁of▁sentence｜>") == [1])
        #expect(encoding.encode("<think").count > 1)
        #expect(encoding.decode(encoding.encode("x<｜tool▁sep｜>y")) == "x<｜tool▁sep｜>y")
        #expect(encoding.decode([0]) == "<｜begin▁of▁sentence｜>")
    }

    @Test("a million bytes with no whitespace count in linear time")
    func longPieces() throws {
        let encoding = try Self.encoding()
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            #expect(encoding.count(String(repeating: "a", count: 1_000_000)) == 125_000)
        }
        #expect(elapsed < .seconds(20))
    }

    static func chat(_ messages: [(String, String)], tools: [JSONValue] = []) throws -> PromptCounter.Count {
        let tokenizer = try ModelTokenizer.resolve(
            upstreamModel: "deepseek-chat", configuredEncoding: "deepseek_v3", calibrationPerMille: 1000)
        var members: [(String, JSONValue)] = [
            ("messages", .array(messages.map { .object([("role", .string($0.0)), ("content", .string($0.1))]) }))
        ]
        if !tools.isEmpty { members.append(("tools", .array(tools))) }
        return PromptCounter(tokenizer: tokenizer).count(endpoint: .chatCompletions, json: .object(members))
    }

    /// DeepSeek's API documentation shows `prompt_tokens: 10` for this request.
    @Test("a chat counts as DeepSeek reports it, exactly")
    func documentedChat() throws {
        #expect(
            try Self.chat([("system", "You are a helpful assistant"), ("user", "Hi")])
                == .init(tokens: 10, isEstimate: false))
    }

    @Test("the chat template's count is the count of the prompt it renders")
    func templateRendering() throws {
        let encoding = try Self.encoding()
        let messages = [
            ("system", "You are terse."), ("system", "答案用中文。"), ("user", "1+1=?"),
            ("assistant", "<think>easy</think>2"), ("user", "再来一次 <think> 3*3"),
        ]
        let rendered =
            "<｜begin▁of▁sentence｜>You are terse.\n\n答案用中文。<｜User｜>1+1=?<｜Assistant｜></think>2"
            + "<｜end▁of▁sentence｜><｜User｜>再来一次 <think> 3*3<｜Assistant｜></think>"
        #expect(try Self.chat(messages) == .init(tokens: encoding.count(rendered), isEstimate: false))
        let tool = JSONValue.object([
            ("type", .string("function")), ("function", .object([("name", .string("get_weather"))])),
        ])
        #expect(try Self.chat([("user", "weather?")], tools: [tool]).isEstimate)
    }

    @Test("a truncated or altered vocabulary file is refused")
    func refusesBadFiles() throws {
        #expect(throws: ByteLevelVocabulary.LoadError.self) { try ByteLevelVocabulary(compactFile: [1, 2, 3]) }
        #expect(throws: ByteLevelVocabulary.LoadError.self) {
            try ByteLevelVocabulary(compactFile: Array("DSBPEv1\n".utf8) + [UInt8](repeating: 0, count: 40))
        }
    }
}
