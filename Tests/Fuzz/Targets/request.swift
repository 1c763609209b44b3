// Fuzz target: RequestParser and ParsedRequest.upstreamBody.
// Input: [endpoint][flags][model-name length n][n bytes of upstream model name][body...].
// - parse never crashes, for every endpoint;
// - when it succeeds, upstreamBody(model:requestUsage:outputCap:) is a valid request body
//   (parseTopLevelObject succeeds: valid JSON with no repeated member), names the upstream model,
//   carries stream_options.include_usage = true when usage was requested, and carries the output cap
//   when one was given and the client set no limit; every other member is unchanged.
import Foundation

@testable import Metering

let outputMembers = ["max_tokens", "max_completion_tokens", "max_output_tokens"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let first = Int(input.byte())
    let flags = input.byte()
    let nameLength = input.int(below: 24)
    var nameBytes: [UInt8] = []
    for _ in 0..<nameLength { nameBytes.append(input.byte()) }
    let body = input.rest()
    // Every endpoint, starting with the one the input picks (so all are fuzzed each run).
    let endpoints = APIEndpoint.allCases
    for k in 0..<endpoints.count {
        let endpoint = endpoints[(first + k) % endpoints.count]
        guard let parsed = try? RequestParser.parse(endpoint: endpoint, body: body) else { continue }
        _ = PromptText.extract(endpoint: endpoint, json: parsed.json)
        check(parsed.modelSpan.upperBound <= body.count, "model span outside the body")
        check(parsed.choices >= 1 && parsed.choices <= RequestParser.maxChoices, "choices \(parsed.choices)")
        check((parsed.maxOutputTokens ?? 0) >= 0, "negative output limit")

        let upstreamModel = flags & 1 == 0 ? parsed.model : String(decoding: nameBytes, as: UTF8.self)
        let requestUsage = flags & 2 != 0
        let cap: (member: String, tokens: Int)? =
            flags & 4 != 0 ? (outputMembers[Int(flags >> 3) % 3], Int(flags >> 5) * 1000 + 1) : nil
        let out = parsed.upstreamBody(model: upstreamModel, requestUsage: requestUsage, outputCap: cap)
        let result: (value: JSONValue, spans: MemberSpans)
        do {
            result = try JSONReader.parseTopLevelObject(out)
        } catch {
            check(
                false,
                "upstreamBody is not a valid body (\(error)); endpoint \(endpoint.rawValue), model "
                    + "\(upstreamModel.debugDescription), requestUsage \(requestUsage), cap \(String(describing: cap)); "
                    + "out: \(String(decoding: out, as: UTF8.self).debugDescription)")
            return 0
        }
        let json = result.value
        check(json["model"]?.stringValue == upstreamModel, "upstream body names another model")
        if requestUsage {
            check(
                json["stream_options"]?["include_usage"]?.boolValue == true,
                "usage requested but stream_options.include_usage is not true")
        }
        if let cap, parsed.maxOutputTokens == nil {
            check(json[cap.member]?.intValue == cap.tokens, "output cap \(cap.member) not set")
        }
        // Members the gateway does not touch are forwarded as they were.
        let touched = Set(["model", "stream_options"] + (cap.map { [$0.member] } ?? []))
        for (key, value) in parsed.json.objectValue ?? [] where !touched.contains(key) {
            check(json[key] == value, "member \(key.debugDescription) changed")
        }
        // Re-parsing the upstream body as a request must work too (the mock forwarder does).
        if let again = try? RequestParser.parse(endpoint: endpoint, body: out) {
            check(again.model == upstreamModel || upstreamModel.isEmpty, "re-parsed model differs")
        }
    }
    return 0
}
