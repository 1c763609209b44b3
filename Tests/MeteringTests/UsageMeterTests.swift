import Metering
import Testing

@Suite("SSE parsing")
struct SSEParserTests {
    @Test("LF, CRLF and CR line ends, multi-line data, comments, event names")
    func lines() {
        var p = SSEParser()
        let events = p.feed(
            Array(": comment\r\nevent: ping\r\ndata: a\rdata: b\n\ndata:x\n\n\n\ndata: [DONE]\n\n".utf8))
        #expect(
            events == [
                .init(event: "ping", data: "a\nb"), .init(event: nil, data: "x"), .init(event: nil, data: "[DONE]"),
            ])
    }

    @Test("the same events whatever the chunk boundaries, even inside CRLF and UTF-8")
    func everySplit() {
        let text = Array("event: message_start\r\ndata: {\"t\":\"中文 é\"}\r\n\r\ndata: 2\n\n".utf8)
        var whole = SSEParser()
        let expected = whole.feed(text)
        #expect(expected.count == 2)
        for cut in 0...text.count {
            var p = SSEParser()
            #expect(p.feed(text[..<cut]) + p.feed(text[cut...]) == expected, "cut at \(cut)")
        }
    }
}

@Suite("Usage metering of responses")
struct UsageMeterTests {
    static let o200k = try! TokenEncoding.named("o200k_base")

    /// Feeds `body` split at every byte boundary; all splits must agree with the unsplit result.
    static func meter(_ endpoint: APIEndpoint, stream: Bool, _ body: String) -> (Usage?, Int, Bool) {
        let bytes = Array(body.utf8)
        func run(_ cut: Int) -> (Usage?, Int, Bool) {
            var m = UsageMeter(endpoint: endpoint, streaming: stream, encoding: o200k)
            m.feed(bytes[..<cut])
            m.feed(bytes[cut...])
            m.finish()
            return (m.reported, m.localCompletionTokens, m.completed)
        }
        let whole = run(bytes.count)
        for cut in 0..<bytes.count {
            let split = run(cut)
            #expect(split.0 == whole.0 && split.1 == whole.1 && split.2 == whole.2, "cut at \(cut)")
        }
        return whole
    }

    @Test("OpenAI stream with include_usage: the final usage chunk; every content delta counted")
    func openAIStream() {
        let body = """
            data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}

            data: {"id":"c","choices":[{"index":0,"delta":{"content":"Hello there"}}],"usage":null}

            data: {"id":"c","choices":[{"index":0,"delta":{"content":", friend."}}],"usage":null}

            data: {"id":"c","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24,"prompt_tokens_details":{"cached_tokens":8},"completion_tokens_details":{"reasoning_tokens":0}}}

            data: [DONE]


            """
        let (usage, local, completed) = Self.meter(.chatCompletions, stream: true, body)
        #expect(usage == Usage(prompt: 20, completion: 4, cachedPrompt: 8))
        #expect(local == Self.o200k.count("Hello there, friend."))
        #expect(completed)
    }

    @Test("a cut stream reports nothing, and the delivered deltas are counted locally")
    func cutStream() {
        let body = """
            data: {"choices":[{"index":0,"delta":{"content":"Partial answer that"}}]}

            data: {"choices":[{"index":0,"delta":{"content":" stops"}}]}

            data: {"choices":[{"index":0,"delta":{"content":" mid-wo
            """
        let (usage, local, completed) = Self.meter(.chatCompletions, stream: true, body)
        #expect(usage == nil)
        #expect(!completed)
        #expect(local == Self.o200k.count("Partial answer that stops"))
    }

    @Test("DeepSeek: cache hits in prompt_cache_hit_tokens, reasoning_content and tool calls counted apart")
    func deepSeek() {
        let body = """
            data: {"choices":[{"index":0,"delta":{"reasoning_content":"Think: 2+2"}}]}

            data: {"choices":[{"index":0,"delta":{"reasoning_content":" is 4."}}]}

            data: {"choices":[{"index":0,"delta":{"content":"Four"}}]}

            data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"lookup","arguments":"{\\"q\\":"}}]}}]}

            data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"x\\"}"}}]}}]}

            data: {"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":30,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36,"completion_tokens_details":{"reasoning_tokens":12}}}

            data: [DONE]


            """
        let (usage, local, _) = Self.meter(.chatCompletions, stream: true, body)
        #expect(usage == Usage(prompt: 100, completion: 30, cachedPrompt: 64, reasoning: 12))
        let expected =
            Self.o200k.count("Think: 2+2 is 4.") + Self.o200k.count("Four") + Self.o200k.count("lookup")
            + Self.o200k.count(#"{"q":"x"}"#)
        #expect(local == expected)
    }

    @Test("Kimi: final usage inside choices[0]")
    func kimi() {
        let body = """
            data: {"choices":[{"index":0,"delta":{"content":"你好"}}]}

            data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}]}

            data: [DONE]


            """
        let (usage, _, _) = Self.meter(.chatCompletions, stream: true, body)
        #expect(usage == Usage(prompt: 9, completion: 2))
    }

    @Test("Anthropic stream: input and cache from message_start, cumulative output from the last message_delta")
    func anthropicStream() {
        let body = """
            event: message_start
            data: {"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":200,"cache_creation_input_tokens":50,"output_tokens":1}}}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Bonjour"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":3}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" tout le monde"}}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}

            event: message_stop
            data: {"type":"message_stop"}


            """
        let (usage, local, completed) = Self.meter(.messages, stream: true, body)
        #expect(usage == Usage(prompt: 260, completion: 7, cachedPrompt: 200, cacheWrite: 50))
        #expect(local == Self.o200k.count("Bonjour tout le monde"))
        #expect(completed)
    }

    @Test("Responses API stream: usage from response.completed")
    func responsesStream() {
        let body = """
            event: response.output_text.delta
            data: {"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"Hi"}

            event: response.completed
            data: {"type":"response.completed","response":{"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":1,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":6}}}


            """
        let (usage, local, completed) = Self.meter(.responses, stream: true, body)
        #expect(usage == Usage(prompt: 5, completion: 1))
        #expect(local == 1)
        #expect(completed)
    }

    @Test("non-streamed JSON: chat, Anthropic and embeddings")
    func json() {
        let chat =
            #"{"choices":[{"index":0,"message":{"role":"assistant","content":"Done."}}],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#
        let (chatUsage, chatLocal, _) = Self.meter(.chatCompletions, stream: false, chat)
        #expect(chatUsage == Usage(prompt: 7, completion: 2))
        #expect(chatLocal == Self.o200k.count("Done."))
        let claude =
            #"{"content":[{"type":"text","text":"Yes"}],"usage":{"input_tokens":4,"cache_read_input_tokens":6,"output_tokens":1}}"#
        #expect(Self.meter(.messages, stream: false, claude).0 == Usage(prompt: 10, completion: 1, cachedPrompt: 6))
        let embeddings = #"{"object":"list","data":[],"usage":{"prompt_tokens":12,"total_tokens":12}}"#
        #expect(Self.meter(.embeddings, stream: false, embeddings).0 == Usage(prompt: 12))
    }
}
