// Fuzz target: the gateway's HTTP/1.1 parsers, ClientRequestParser (requests from clients) and
// UpstreamResponseParser (responses from upstreams), with HTTP1Syntax under both.
// Input: [which][number of cuts][cuts...][bytes...]; which = bit 0: 0 requests, 1 a response. The bytes
// are fed in chunks cut at the fuzzer-chosen points, then again whole.
// - nothing crashes or spins (every call consumes bytes or stops);
// - how the bytes were chunked changes nothing: the same heads, body bytes, ends and error (for a
//   response, whether it failed: bytes that cannot begin a status line fail as soon as they are seen,
//   which may name another fault than the whole line would);
// - bodies are slices of the input: never more body bytes than were fed; a head's fields are bounded.
import HTTPTypes
import NIOCore
import NIOHTTP1

@testable import HTTP1Parsers

/// What a parser made of the bytes: a line per event, and how it stopped.
struct Outcome: Equatable {
    var events: [String] = []
    var bodyBytes = 0
    var error: String?
}

/// Feeds each piece to `step`, which reads what it can of it and says whether the message is done;
/// the first error ends the run.
func run(_ pieces: [ArraySlice<UInt8>], _ step: (inout ByteBuffer, inout Outcome) throws -> Bool) -> Outcome {
    var out = Outcome()
    for piece in pieces {
        var buffer = ByteBuffer(bytes: piece)
        do {
            if try step(&buffer, &out) { break }
        } catch {
            out.error = "\(error)"
            break
        }
    }
    return out
}

func parseRequests(_ pieces: [ArraySlice<UInt8>]) -> Outcome {
    var parser = ClientRequestParser()
    return run(pieces) { buffer, out in
        while let event = try parser.next(&buffer) {
            switch event {
            case .head(let head):
                let fields = head.request.headerFields
                check(fields.count <= ClientRequestParser.maxFields, "\(fields.count) fields")
                out.events.append(
                    "head \(head.request.method.rawValue) \(head.request.path ?? "-") "
                        + "\(head.request.authority ?? "-") \(head.keepAlive) \(head.isHTTP10) "
                        + fields.map { "\($0.name.rawName)=\($0.value)" }.joined(separator: ","))
            case .body(let slice): out.bodyBytes += slice.readableBytes
            case .end: out.events.append("end \(out.bodyBytes)")
            }
        }
        return false
    }
}

func parseResponse(_ pieces: [ArraySlice<UInt8>]) -> Outcome {
    var parser = UpstreamResponseParser()
    return run(pieces) { buffer, out in
        while let event = try parser.next(&buffer) {
            switch event {
            case .head(let head):
                out.events.append(
                    "head \(head.status.code) \(head.version) \(head.headers.map { "\($0.name)=\($0.value)" })")
            case .body(let slice): out.bodyBytes += slice.readableBytes
            case .end: out.events.append("end \(out.bodyBytes) \(parser.keepAlive)")
            }
        }
        // A response ends at its end: what follows is not read.
        return parser.isDone
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let response = input.bool()
    let cuts = (0..<input.int(below: 8)).map { _ in Int(input.byte()) << 8 | Int(input.byte()) }
    let bytes = input.rest()
    let parse = response ? parseResponse : parseRequests
    var whole = parse([bytes[...]])
    var cut = parse(chunks(of: bytes, cuts: cuts))
    if response {
        whole.error = whole.error.map { _ in "failed" }
        cut.error = cut.error.map { _ in "failed" }
    }
    check(whole.bodyBytes <= bytes.count, "\(whole.bodyBytes) body bytes from \(bytes.count)")
    check(whole == cut, "chunking changed the outcome: whole \(whole), cut at \(cuts): \(cut); input \(hex(bytes))")
    return 0
}
