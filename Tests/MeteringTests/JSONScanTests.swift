import Foundation
import TestSupport
import Testing

@testable import Metering

/// The meter reads OpenAI chunks in place (`JSONScan`) instead of through a ``JSONValue`` tree. These
/// tests hold it to the tree: the same documents valid, and the same usage and local counts from
/// thousands of generated chunks, mutated ones included.
@Suite("In-place JSON reading agrees with the tree")
struct JSONScanTests {
    static let strings = [
        #""hello""#, #""""#, #""中文 é""#, #""line\nbreak \"quoted\" \\ \/""#, #""\u00e9\u4e2d""#,
        #""\ud83d\ude00 pair""#, #""\ud800 lone""#, #""\udc00""#, #""tab\there""#, #""{\"a\":1}""#,
    ]
    static let numbers = ["0", "1", "-3", "12", "1.5", "2e3", "9223372036854775807", "9223372036854775808", "-0"]

    static func value(_ rng: inout SplitMix, depth: Int = 0) -> String {
        switch Int(rng.next() % (depth > 2 ? 4 : 6)) {
        case 0: return strings.randomElement(using: &rng)!
        case 1: return numbers.randomElement(using: &rng)!
        case 2: return ["null", "true", "false"].randomElement(using: &rng)!
        case 3: return strings.randomElement(using: &rng)!
        case 4:
            return "[" + (0..<Int(rng.next() % 3)).map { _ in value(&rng, depth: depth + 1) }.joined(separator: ",")
                + "]"
        default:
            return "{"
                + (0..<Int(rng.next() % 3)).map { _ in "\"k\(rng.next() % 4)\": " + value(&rng, depth: depth + 1) }
                .joined(separator: ", ") + "}"
        }
    }

    /// A chat or completions chunk, with the members the meter reads in varied shapes.
    static func chunk(_ rng: inout SplitMix) -> String {
        func pick(_ options: [String]) -> String { options.randomElement(using: &rng)! }
        func text() -> String { rng.next() % 5 == 0 ? value(&rng) : strings.randomElement(using: &rng)! }
        func key(_ name: String) -> String {
            // Now and then the same name with an escape, which must read the same.
            rng.next() % 7 == 0 ? "\"\\u00\(String(name.utf8.first!, radix: 16))\(name.dropFirst())\"" : "\"\(name)\""
        }
        var members: [String] = []
        if rng.next() % 2 == 0 { members.append(#""id":"chatcmpl-1","object":"chat.completion.chunk""#) }
        var calls: [String] = []
        for _ in 0..<Int(rng.next() % 3) {
            var call: [String] = []
            if rng.next() % 3 != 0 { call.append("\(key("index")): \(pick(["0", "1", "2", "\"1\"", "1.0"]))") }
            if rng.next() % 4 != 0 {
                call.append(
                    "\(key("function")): {\(key("name")): \(text()), \(key("arguments")): \(text())}")
            }
            calls.append("{" + call.joined(separator: ",") + "}")
        }
        var delta: [String] = []
        if rng.next() % 4 != 0 { delta.append("\(key("content")): \(text())") }
        if rng.next() % 3 == 0 { delta.append("\(key("reasoning_content")): \(text())") }
        if !calls.isEmpty { delta.append("\(key("tool_calls")): [\(calls.joined(separator: ","))]") }
        if rng.next() % 6 == 0 { delta.append("\(key("content")): \(text())") }  // repeated: the last counts
        var choices: [String] = []
        for _ in 0..<Int(rng.next() % 3) {
            var choice: [String] = []
            if rng.next() % 4 != 0 { choice.append("\(key("index")): \(pick(["0", "1", "7", "\"x\"", "-1"]))") }
            if rng.next() % 5 != 0 { choice.append("\(key("delta")): {\(delta.joined(separator: ", "))}") }
            if rng.next() % 5 == 0 { choice.append("\(key("text")): \(text())") }
            if rng.next() % 8 == 0 {
                choice.append(#""usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}"#)
            }
            choice.append(#""finish_reason": null"#)
            choices.append("{" + choice.joined(separator: ", ") + "}")
        }
        if rng.next() % 6 != 0 { members.append("\(key("choices")): [\(choices.joined(separator: ","))]") }
        switch rng.next() % 4 {
        case 0: members.append(#""usage": null"#)
        case 1: members.append(#""usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}"#)
        case 2: members.append(#""usage": {"prompt_tokens": -1}"#)
        default: break
        }
        members.shuffle(using: &rng)
        return "{" + members.joined(separator: pick([",", ", ", " ,\n"])) + "}"
    }

    static func mutate(_ text: String, _ rng: inout SplitMix) -> [UInt8] {
        var bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return bytes }
        switch rng.next() % 4 {
        case 0: bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
        case 1: bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
        case 2:
            bytes.insert(
                Array(#",:{}[]"\ 0e-"#.utf8).randomElement(using: &rng)!, at: Int(rng.next() % UInt64(bytes.count)))
        default: bytes.remove(at: Int(rng.next() % UInt64(bytes.count)))
        }
        return bytes
    }

    @Test("a document is valid in place exactly when the tree reader accepts it")
    func validity() {
        var rng = SplitMix(seed: 26)
        var valid = 0
        for round in 0..<20_000 {
            let text = round % 2 == 0 ? Self.chunk(&rng) : Self.value(&rng)
            let bytes = round % 3 == 0 ? Self.mutate(text, &rng) : Array(text.utf8)
            let tree = (try? JSONReader.parse(bytes)) != nil
            let scanned = bytes.withUnsafeBufferPointer { bytes in
                var scan = JSONScan(bytes)
                return scan.validate(0..<bytes.count) != nil
            }
            #expect(scanned == tree, "\(String(decoding: bytes, as: UTF8.self))")
            if tree { valid += 1 }
        }
        #expect(valid > 10_000)
        let deep = Array((String(repeating: "[", count: 200) + String(repeating: "]", count: 200)).utf8)
        #expect(
            deep.withUnsafeBufferPointer { bytes in
                var scan = JSONScan(bytes)
                return scan.validate(0..<bytes.count)
            } == nil)
    }

    /// Every member and element, walked from `value` down: as (depth, key, value) ranges.
    static func walk(_ scan: JSONScan, _ value: Range<Int>, depth: Int = 0) -> [String] {
        var out: [String] = []
        scan.forEachMember(value) { key, member in
            out.append("\(depth) \(key) \(member)")
            out += walk(scan, member, depth: depth + 1)
        }
        scan.forEachElement(value) { element in
            out.append("\(depth) - \(element)")
            out += walk(scan, element, depth: depth + 1)
        }
        return out
    }

    @Test("the walks over the containers validation taped find what scanning finds, at every depth")
    func tapeAgrees() {
        var rng = SplitMix(seed: 77)
        for round in 0..<5_000 {
            let text = round % 2 == 0 ? Self.chunk(&rng) : Self.value(&rng)
            let bytes = Array(text.utf8)
            bytes.withUnsafeBufferPointer { bytes in
                var taped = JSONScan(bytes)
                guard let top = taped.validate(0..<bytes.count) else { return }
                // Never validated: no tape, every walk scans.
                let scanned = JSONScan(bytes)
                #expect(Self.walk(taped, top) == Self.walk(scanned, top), "\(text)")
            }
        }
    }

    /// The meter's reading before `JSONScan`, on the tree: the oracle.
    static func treeReading(_ events: [[UInt8]]) -> (Usage?, Int) {
        var reported: Usage?
        var channels: [String: StreamingTokenCounter] = [:]
        func count(_ text: String, _ channel: String) {
            channels[channel, default: StreamingTokenCounter(encoding: UsageMeterTests.o200k)].append(text)
        }
        for event in events {
            guard let json = try? JSONReader.parse(event) else { continue }
            if let usage = json["usage"].flatMap(Usage.openAI) { reported = usage }
            for choice in json["choices"]?.arrayValue ?? [] {
                if let usage = choice["usage"].flatMap(Usage.openAI) { reported = usage }
                let c = choice["index"]?.intValue ?? 0
                if let m = choice["delta"] {
                    if let s = m["content"]?.stringValue { count(s, "\(c):content") }
                    if let s = m["reasoning_content"]?.stringValue { count(s, "\(c):reasoning") }
                    for (position, call) in (m["tool_calls"]?.arrayValue ?? []).enumerated() {
                        let index = call["index"]?.intValue ?? position
                        if let s = call["function"]?["name"]?.stringValue { count(s, "\(c):tool\(index):name") }
                        if let s = call["function"]?["arguments"]?.stringValue {
                            count(s, "\(c):tool\(index):arguments")
                        }
                    }
                }
                if let text = choice["text"]?.stringValue { count(text, "\(c):text") }
            }
        }
        return (reported, channels.values.reduce(0) { $0 + $1.finalCount })
    }

    @Test("generated chat chunks, mutated ones too: the same usage and local counts as the tree reading")
    func meterAgrees() {
        var rng = SplitMix(seed: 2026)
        for round in 0..<1_500 {
            let events = (0..<Int(rng.next() % 6) + 1).map { i in
                i % 4 == 3 ? Self.mutate(Self.chunk(&rng), &rng) : Array(Self.chunk(&rng).utf8)
            }
            let expected = Self.treeReading(events)
            for strip in [false, true] {
                var meter = ResponseMeter(
                    endpoint: .chatCompletions, streaming: true, encoding: UsageMeterTests.o200k,
                    stripInjectedUsage: strip)
                for event in events where !event.contains(0x0A) && !event.contains(0x0D) {
                    _ = meter.feed(Array("data: ".utf8) + event + Array("\n\n".utf8))
                }
                _ = meter.finish()
                let fed = events.filter { !$0.contains(0x0A) && !$0.contains(0x0D) }
                let oracle = fed.count == events.count ? expected : Self.treeReading(fed)
                #expect(meter.usage.reported == oracle.0, "round \(round)")
                #expect(meter.usage.localCompletionTokens == oracle.1, "round \(round)")
            }
        }
    }

    @Test("stripping: the usage-only chunk is dropped and a null usage member is cut out, as before")
    func stripping() {
        var meter = ResponseMeter(
            endpoint: .chatCompletions, streaming: true, encoding: UsageMeterTests.o200k, stripInjectedUsage: true)
        let first = meter.feed(
            Array(#"data: {"usage": null, "choices":[{"delta":{"content":"hi"}}]}"#.utf8 + [10, 10]))
        #expect(first == .replaced(Array(#"data: {"choices":[{"delta":{"content":"hi"}}]}"#.utf8 + [10, 10])))
        let middle = meter.feed(
            Array(#"data: {"choices":[{"delta":{"content":"yo"}}] , "usage" : null}"#.utf8 + [10, 10]))
        // From the comma on: the space before it stays.
        #expect(middle == .replaced(Array(#"data: {"choices":[{"delta":{"content":"yo"}}] }"#.utf8 + [10, 10])))
        let last = meter.feed(
            Array(
                #"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#.utf8 + [
                    10, 10,
                ]))
        #expect(last == .replaced([]))
        // A chunk of whole events that all stay as they came goes on as it is, uncopied.
        let done = meter.feed(Array("data: [DONE]\n\n".utf8))
        #expect(done == .unchanged)
        #expect(meter.usage.reported == Usage(prompt: 5, completion: 2))
        #expect(meter.endReached)
    }

    @Test("stripping: a stream cut anywhere, in two pieces or byte by byte, reaches the client as when whole")
    func strippingCutAnywhere() {
        let events = [
            #"data: {"choices":[{"delta":{"content":"kept"}}]}"# + "\n\n",
            #"data: {"usage": null, "choices":[{"delta":{"content":"cut"}}]}"# + "\r\n\r\n",
            ": a comment\n\n",
            #"data: {"choices":[{"delta":{"content":"kept too"}}]}"# + "\r\r",
            #"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"# + "\n\n",
            "data: [DONE]\n\n",
        ]
        let stream = Array(events.joined().utf8)
        func relay(_ pieces: [ArraySlice<UInt8>]) -> ([UInt8], Usage?, Int) {
            var meter = ResponseMeter(
                endpoint: .chatCompletions, streaming: true, encoding: UsageMeterTests.o200k, stripInjectedUsage: true)
            var out: [UInt8] = []
            for piece in pieces {
                switch meter.feed(piece) {
                case .unchanged: out += piece
                case .replaced(let bytes): out += bytes
                }
            }
            out += meter.finish()
            return (out, meter.usage.reported, meter.usage.localCompletionTokens)
        }
        let whole = relay([stream[...]])
        let expected =
            events[0] + #"data: {"choices":[{"delta":{"content":"cut"}}]}"# + "\r\n\r\n" + events[2]
            + events[3] + events[5]
        #expect(whole.0 == Array(expected.utf8))
        #expect(whole.1 == Usage(prompt: 5, completion: 3))
        for cut in 1..<stream.count {
            #expect(relay([stream[..<cut], stream[cut...]]) == whole, "cut at \(cut)")
        }
        #expect(relay(stream.indices.map { stream[$0...$0] }) == whole)
    }

    @Test("stripping on an Anthropic stream meters as without stripping (a fuzz find)", arguments: [false, true])
    func strippingOnlyOpenAI(whole: Bool) {
        // The `sse` target's input: a message_delta whose usage has a key of invalid UTF-8.
        let body: [UInt8] =
            Array(",}}\n\nevenda: messae_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"".utf8)
            + [0xFE, 0xFF] + Array("ns\":37}}\n:}\n\n".utf8)
        func run(strip: Bool) -> (Usage?, Int, [UInt8]) {
            var meter = ResponseMeter(
                endpoint: .messages, streaming: true, encoding: UsageMeterTests.o200k, stripInjectedUsage: strip)
            var out: [UInt8] = []
            let pieces = whole ? [body[...]] : [body[..<20], body[20...]]
            for piece in pieces {
                switch meter.feed(piece) {
                case .unchanged: out += piece
                case .replaced(let bytes): out += bytes
                }
            }
            out += meter.finish()
            return (meter.usage.reported, meter.usage.localCompletionTokens, out)
        }
        let stripped = run(strip: true)
        let plain = run(strip: false)
        #expect(stripped.0 == plain.0 && stripped.1 == plain.1)
        #expect(stripped.2 == body && plain.2 == body)
    }
}

/// A non-streamed OpenAI answer is read in place too: the same usage and local counts as its tree.
@Suite("Whole answers read in place agree with the tree")
struct JSONScanBodyTests {
    /// A chat, completions or responses answer: a chunk's shapes with `message` for `delta`, and now
    /// and then a Responses `output`.
    static func body(_ rng: inout SplitMix) -> String {
        var text = JSONScanTests.chunk(&rng)
            .replacingOccurrences(of: "\"delta\"", with: "\"message\"")
            .replacingOccurrences(of: "\"\\u0064elta\"", with: "\"\\u006dessage\"")
        if rng.next() % 3 == 0 {
            func string() -> String { JSONScanTests.strings.randomElement(using: &rng)! }
            let parts = (0..<Int(rng.next() % 3)).map { _ in
                rng.next() % 4 == 0 ? JSONScanTests.value(&rng) : "{\"type\":\"output_text\",\"text\":\(string())}"
            }
            var item = ["\"content\": [\(parts.joined(separator: ","))]"]
            if rng.next() % 3 == 0 { item.append("\"arguments\": \(string())") }
            let output = "\"output\": [{\(item.joined(separator: ","))}, {\"arguments\": \(string())}]"
            text = text == "{}" ? "{\(output)}" : "{\(output), " + text.dropFirst()
        }
        return text
    }

    /// The meter's reading of a whole answer before it read in place, on the tree: the oracle.
    static func treeReading(_ bytes: [UInt8]) -> (Usage?, Int, Bool) {
        guard let json = try? JSONReader.parse(bytes) else { return (nil, 0, false) }
        var channels: [String: StreamingTokenCounter] = [:]
        func count(_ text: String, _ channel: String) {
            channels[channel, default: StreamingTokenCounter(encoding: UsageMeterTests.o200k)].append(text)
        }
        let reported = json["usage"].flatMap(Usage.openAI)
        for choice in json["choices"]?.arrayValue ?? [] {
            let c = choice["index"]?.intValue ?? 0
            let m = choice["message"] ?? .null
            if let s = m["content"]?.stringValue { count(s, "\(c):content") }
            if let s = m["reasoning_content"]?.stringValue { count(s, "\(c):reasoning") }
            for (position, call) in (m["tool_calls"]?.arrayValue ?? []).enumerated() {
                let index = call["index"]?.intValue ?? position
                if let s = call["function"]?["name"]?.stringValue { count(s, "\(c):tool\(index):name") }
                if let s = call["function"]?["arguments"]?.stringValue { count(s, "\(c):tool\(index):arguments") }
            }
            if let text = choice["text"]?.stringValue { count(text, "\(c):text") }
        }
        for (i, item) in (json["output"]?.arrayValue ?? []).enumerated() {
            for (j, part) in (item["content"]?.arrayValue ?? []).enumerated() {
                if let text = part["text"]?.stringValue { count(text, "\(i):part\(j)") }
            }
            if let arguments = item["arguments"]?.stringValue { count(arguments, "\(i):arguments") }
        }
        return (reported, channels.values.reduce(0) { $0 + $1.finalCount }, true)
    }

    @Test("generated answers, mutated ones too: the same usage, local counts and completion as the tree")
    func meterAgrees() {
        var rng = SplitMix(seed: 2027)
        var valid = 0
        for round in 0..<3_000 {
            let text = Self.body(&rng)
            let bytes = round % 4 == 3 ? JSONScanTests.mutate(text, &rng) : Array(text.utf8)
            let expected = Self.treeReading(bytes)
            if expected.2 { valid += 1 }
            for endpoint in [APIEndpoint.chatCompletions, .completions, .responses] {
                var meter = ResponseMeter(
                    endpoint: endpoint, streaming: false, encoding: UsageMeterTests.o200k, stripInjectedUsage: false)
                // In two pieces, as a body arrives.
                let cut = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
                _ = meter.feed(Array(bytes[..<cut]))
                _ = meter.feed(Array(bytes[cut...]))
                _ = meter.finish()
                #expect(meter.usage.reported == expected.0, "round \(round): \(text)")
                #expect(meter.usage.localCompletionTokens == expected.1, "round \(round): \(text)")
                #expect(meter.endReached == expected.2, "round \(round): \(text)")
            }
        }
        #expect(valid > 2_000)
    }
}
