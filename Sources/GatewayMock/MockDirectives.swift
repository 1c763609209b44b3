import HTTPTypes

/// Per-request instructions to the mock provider, taken from `x-mock-*` request headers.
///
/// They let a test or a demo ask for a fault without reconfiguring anything:
/// `x-mock-status: 503` answers with that error; `x-mock-cut-after: 3` cuts the connection after three
/// body chunks; `x-mock-stall-ms: 2000` waits before the headers, or, with `x-mock-stall-after: N`,
/// after N body chunks; `x-mock-chunks`, `x-mock-delay-ms` and `x-mock-words` shape the reply.
/// `x-mock-fail-times: N` fails the first N attempts of a request (by its request id) with
/// `x-mock-fail-status` (default 503), then answers; `x-mock-429-key: ID` answers 429 with reset
/// headers when the attempt uses the provider key named ID.
public struct MockDirectives: Sendable, Equatable {
    public var status: Int?
    public var cutAfterChunks: Int?
    public var stallMilliseconds: Int?
    public var stallAfterChunks: Int?
    public var chunks: Int?
    public var chunkDelayMilliseconds: Int?
    public var replyWords: Int?
    public var failTimes: Int?
    public var failStatus: Int?
    public var rateLimitedKey: String?

    public init() {}

    public static let headerPrefix = "x-mock-"

    public init(headers: HTTPFields) {
        func int(_ name: String, _ range: ClosedRange<Int>) -> Int? {
            guard let field = HTTPField.Name(name), let text = headers[field], let v = Int(text), range.contains(v)
            else { return nil }
            return v
        }
        status = int("x-mock-status", 100...599)
        cutAfterChunks = int("x-mock-cut-after", 0...1_000_000)
        stallMilliseconds = int("x-mock-stall-ms", 0...600_000)
        stallAfterChunks = int("x-mock-stall-after", 0...1_000_000)
        chunks = int("x-mock-chunks", 1...100_000)
        chunkDelayMilliseconds = int("x-mock-delay-ms", 0...60_000)
        replyWords = int("x-mock-words", 1...1_000_000)
        failTimes = int("x-mock-fail-times", 0...100)
        failStatus = int("x-mock-fail-status", 400...599)
        rateLimitedKey = HTTPField.Name("x-mock-429-key").flatMap { headers[$0] }
    }
}
