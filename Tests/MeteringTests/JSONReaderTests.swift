import Foundation
import Metering
import Testing

@Suite("JSON reader")
struct JSONReaderTests {
    @Test("parses every kind of value and keeps numbers exact")
    func values() throws {
        let v = try JSONReader.parse(#"{"a":[1,-2.50,3e2,true,false,null],"b":"x\"y\u00e9\ud83d\ude00","c":{}}"#)
        #expect(v["a"]?[0]?.intValue == 1)
        #expect(v["a"]?[1] == .number("-2.50"))
        #expect(v["a"]?[2] == .number("3e2"))
        #expect(v["a"]?[3] == .bool(true))
        #expect(v["a"]?[5] == .null)
        #expect(v["b"]?.stringValue == "x\"yé😀")
        #expect(v["c"]?.objectValue?.isEmpty == true)
    }

    @Test(
        "rejects malformed documents",
        arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "\"\u{01}\"", "{} x", "tru", "1.", "\"\\q\""])
    func rejects(text: String) {
        #expect(throws: JSONError.self) { try JSONReader.parse(text) }
    }

    @Test("bounds nesting depth")
    func depth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONError.self) { try JSONReader.parse(deep) }
    }

    @Test("round-trips through the writer")
    func roundTrip() throws {
        let text = #"{"s":"line\nbreak \"q\" \\ \u0001","n":[0,1.5,-3],"o":{"k":null}}"#
        let v = try JSONReader.parse(text)
        #expect(try JSONReader.parse(JSONWriter.serialize(v)) == v)
    }

    @Test("strings are escaped exactly: quotes, backslashes and control characters; all else as is")
    func escaping() {
        #expect(JSONWriter.quoted("") == #""""#)
        #expect(JSONWriter.quoted("plain ascii") == #""plain ascii""#)
        #expect(JSONWriter.quoted("\"") == #""\"""#)
        #expect(JSONWriter.quoted("a\\b") == #""a\\b""#)
        #expect(JSONWriter.quoted("\n\r\t\u{01}\u{1F}") == #""\n\r\t\u0001\u001f""#)
        #expect(JSONWriter.quoted("héllo 世界 👩‍💻 /") == "\"héllo 世界 👩‍💻 /\"")
        #expect(JSONWriter.quoted("end\"") == #""end\"""#)
        #expect(
            JSONWriter.quoted("\"start, then a run of text longer than a small string")
                == #""\"start, then a run of text longer than a small string""#)
    }
}

@Suite("Request parsing")
struct RequestParserTests {
    @Test("reads model, stream, max output and include_usage")
    func fields() throws {
        let body = Array(
            #"{"stream":true,"model":"gpt-4o","max_completion_tokens":12,"stream_options":{"include_usage":true},"messages":[]}"#
                .utf8)
        let p = try RequestParser.parse(endpoint: .chatCompletions, body: body)
        #expect(p.model == "gpt-4o")
        #expect(p.stream)
        #expect(p.maxOutputTokens == 12)
        #expect(p.includeUsage)
    }

    @Test("rewrites only the model and leaves every other byte alone")
    func rewrite() throws {
        let text = #"{ "messages" : [ {"role":"user","content":"model \"x\""} ],   "model" :  "public-name" , "n":1 }"#
        let p = try RequestParser.parse(endpoint: .chatCompletions, body: Array(text.utf8))
        let out = String(decoding: p.body(withModel: "up/stream \"m\""), as: UTF8.self)
        #expect(out == text.replacingOccurrences(of: #""public-name""#, with: #""up/stream \"m\"""#))
        #expect(p.body(withModel: "public-name") == Array(text.utf8))
    }

    @Test(
        "explains what is wrong",
        arguments: [
            (#"{"messages":[]}"#, "model"), (#"{"model":3}"#, "model"), (#"{"model":"m","stream":"yes"}"#, "stream"),
            (#"{"model":"m","max_tokens":-1}"#, "max_tokens"),
        ])
    func errors(body: String, param: String) {
        do {
            _ = try RequestParser.parse(endpoint: .chatCompletions, body: Array(body.utf8))
            Issue.record("expected an error")
        } catch {
            #expect(error.param == param)
        }
    }

    @Test("Anthropic messages require max_tokens; embeddings cannot stream")
    func endpointRules() {
        #expect(throws: RequestError.self) {
            try RequestParser.parse(endpoint: .messages, body: Array(#"{"model":"c","messages":[]}"#.utf8))
        }
        #expect(throws: RequestError.self) {
            try RequestParser.parse(
                endpoint: .embeddings, body: Array(#"{"model":"e","input":"x","stream":true}"#.utf8))
        }
    }
}
