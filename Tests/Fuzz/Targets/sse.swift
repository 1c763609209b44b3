// Fuzz target: SSEParser, SSEEventFramer, UsageMeter and ResponseMeter.
// Input: [config][number of cuts][cuts...][response bytes...]; the response is fed in chunks cut at
// the fuzzer-chosen points, and again in one piece. config: endpoint = bits 0-2 (mod 5), encoding =
// bits 3-4 (mod 3), streaming = bit 5, strip = bit 6 (non-streamed bodies only).
// - nothing crashes, for each endpoint, streaming or not, stripping injected usage or not;
// - counts are non-negative and bounded, parts never exceed their whole;
// - how the bytes were chunked changes nothing: events, usage, completion, forwarded bytes;
// - stripping injected usage changes what the client sees, never what is metered;
// - an event the meter rewrites is still one valid JSON object, the original minus `usage`.
import Foundation

@testable import Metering

@_cdecl("LLVMFuzzerInitialize")
public func fuzzSSEInitialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    preloadEncodings()
    return 0
}

struct MeterResult: Equatable {
    var reported: Usage?
    var completed: Bool
    var local: Int
    var forwarded: [UInt8]
}

func meter(
    _ pieces: [ArraySlice<UInt8>], endpoint: APIEndpoint, streaming: Bool, strip: Bool, encoding: TokenEncoding
) -> MeterResult {
    var m = ResponseMeter(endpoint: endpoint, streaming: streaming, encoding: encoding, stripInjectedUsage: strip)
    var forwarded: [UInt8] = []
    for piece in pieces {
        switch m.feed(piece) {
        case .unchanged: forwarded.append(contentsOf: piece)
        case .replaced(let bytes): forwarded.append(contentsOf: bytes)
        }
    }
    forwarded.append(contentsOf: m.finish())
    let local = m.usage.localCompletionTokens
    check(local >= 0, "negative local count \(local)")
    if let u = m.usage.reported {
        let limit = Usage.maxReportedTokens
        for (name, v) in [
            ("prompt", u.prompt), ("completion", u.completion), ("cachedPrompt", u.cachedPrompt),
            ("cacheWrite", u.cacheWrite), ("reasoning", u.reasoning),
        ] {
            check(v >= 0 && v <= 3 * limit, "reported \(name) = \(v) out of range: \(u)")
        }
        check(u.cachedPrompt + u.cacheWrite <= u.prompt, "cached + cache write exceed prompt: \(u)")
        check(u.reasoning <= u.completion, "reasoning exceeds completion: \(u)")
    }
    return MeterResult(reported: m.usage.reported, completed: m.endReached, local: local, forwarded: forwarded)
}

func dataPayload(_ event: [UInt8]) -> [UInt8]? {
    // The bytes of the first `data:` line after "data:" and one optional space, as the meter reads them.
    var lineStart = 0
    var i = 0
    while i <= event.count {
        if i == event.count || event[i] == 0x0A || event[i] == 0x0D {
            if event[lineStart..<i].starts(with: "data:".utf8) {
                var s = lineStart + 5
                if s < i && event[s] == 0x20 { s += 1 }
                return Array(event[s..<i])
            }
            lineStart = i + 1
        }
        i += 1
    }
    return nil
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSE(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let config = input.byte()
    let cutCount = input.int(below: 9)
    var cuts: [Int] = []
    for _ in 0..<cutCount { cuts.append(Int(input.byte()) << 8 | Int(input.byte())) }
    let body = input.rest()
    let pieces = chunks(of: body, cuts: cuts)
    let endpoint = APIEndpoint.allCases[Int(config & 7) % APIEndpoint.allCases.count]
    let enc = encoding(Int(config >> 3 & 3) % 3)

    // The SSE parser: chunking changes nothing.
    var whole = SSEParser()
    let events = whole.feed(body)
    var split = SSEParser()
    var splitEvents: [SSEParser.Event] = []
    for piece in pieces { splitEvents += split.feed(piece) }
    check(events == splitEvents, "SSEParser events depend on chunking")

    // The framer: chunking changes nothing, and it loses no byte.
    var framer = SSEEventFramer()
    var framed: [[UInt8]] = []
    for piece in pieces { framed += framer.feed(piece) }
    let rest = framer.finish()
    check(framed.joined() + rest == body, "SSEEventFramer lost or changed bytes")
    var framer1 = SSEEventFramer()
    check(framer1.feed(body) == framed, "SSEEventFramer events depend on chunking")
    for event in framed {
        var stripper = ResponseMeter(
            endpoint: .chatCompletions, streaming: true, encoding: enc, stripInjectedUsage: true)
        guard let forward = stripper.meterStripping(event), forward != event else { continue }
        // Rewritten: its one `"usage": null` taken out of the only data line; the rest must be the same
        // object.
        guard let original = dataPayload(event), let before = try? JSONReader.parse(original),
            let payload = dataPayload(forward)
        else {
            check(false, "rewritten event without JSON: \(hex(event))")
            continue
        }
        guard let after = try? JSONReader.parse(payload), after.objectValue != nil else {
            check(false, "rewritten event is not a JSON object: \(hex(event)) -> \(hex(forward))")
            continue
        }
        let expected = JSONValue.object((before.objectValue ?? []).filter { $0.0 != "usage" })
        check(after == expected, "rewritten event changed more than usage: \(hex(event)) -> \(hex(forward))")
    }

    // The meter: the input picks the mode (each endpoint, streaming or not, each encoding).
    let streaming = config & 0x20 != 0
    if streaming {
        // Stripping injected usage: chunked and whole forward the same bytes and meter the same.
        let cut = meter(pieces, endpoint: endpoint, streaming: true, strip: true, encoding: enc)
        let one = meter([body[...]], endpoint: endpoint, streaming: true, strip: true, encoding: enc)
        check(cut == one, "meter (strip) depends on chunking: \(cut) vs \(one)")
        // Not stripping: bytes pass unchanged, and what is metered is what the stripping meter metered.
        let plain = meter(pieces, endpoint: endpoint, streaming: true, strip: false, encoding: enc)
        check(plain.forwarded == body, "meter changed bytes it should pass as they are")
        check(
            plain.reported == cut.reported && plain.completed == cut.completed && plain.local == cut.local,
            "stripping changed what was metered (\(endpoint)): \(cut) vs \(plain)")
    } else {
        let strip = config & 0x40 != 0  // no effect on a non-streamed body
        let cut = meter(pieces, endpoint: endpoint, streaming: false, strip: strip, encoding: enc)
        let one = meter([body[...]], endpoint: endpoint, streaming: false, strip: strip, encoding: enc)
        check(cut == one, "meter (JSON body) depends on chunking: \(cut) vs \(one)")
        check(cut.forwarded == body, "meter changed a JSON body")
    }
    return 0
}
