import Metering
import Testing

/// Inputs found by the libFuzzer targets in Tests/Fuzz (scripts/fuzz.sh), pinned with the behaviour
/// they should have.
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    /// fuzz-request, reproducer (hex) `010400` + `{"model":"m","max_tokens":null}`: endpoint
    /// /v1/completions, output cap ("max_tokens", 1). A client's `"max_tokens": null` leaves
    /// `maxOutputTokens` nil, so `upstreamBody` adds the cap as a second `max_tokens` member:
    /// `{"max_tokens":1,"model":"m","max_tokens":null}`. The gateway's own reader refuses that body,
    /// and an upstream that keeps the last member (most do) sees no limit at all, so the output the
    /// reservation was sized for is not enforced.
    @Test(
        "an output cap replaces a client's null limit instead of repeating the member",
        arguments: [
            (APIEndpoint.completions, #"{"model":"m","max_tokens":null}"#, "max_tokens"),
            (
                APIEndpoint.chatCompletions, #"{"model":"m","max_completion_tokens":null,"messages":[]}"#,
                "max_completion_tokens"
            ),
            (APIEndpoint.chatCompletions, #"{"model":"m","messages":[],"max_tokens" : null }"#, "max_tokens"),
            (APIEndpoint.responses, #"{"max_output_tokens":null,"model":"m","input":"hi"}"#, "max_output_tokens"),
        ])
    func outputCapOverNullLimit(endpoint: APIEndpoint, body: String, member: String) throws {
        let parsed = try RequestParser.parse(endpoint: endpoint, body: Array(body.utf8))
        #expect(parsed.maxOutputTokens == nil)
        let upstream = parsed.upstreamBody(model: "up", requestUsage: false, outputCap: (member, 4096))
        let text = String(decoding: upstream, as: UTF8.self)
        // A valid body: parseTopLevelObject refuses a repeated member.
        let json = try #require(try? JSONReader.parseTopLevelObject(upstream).value, "upstream body: \(text)")
        #expect(json[member]?.intValue == 4096, "upstream body: \(text)")
        #expect(json["model"]?.stringValue == "up")
        #expect(json.objectValue?.filter { $0.0 == member }.count == 1, "upstream body: \(text)")
    }
}
