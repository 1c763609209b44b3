/// The meter stage: reads every byte the gateway relays and decides what the client gets.
///
/// It feeds a ``UsageMeter`` with the upstream's bytes exactly as they came. When the gateway asked the
/// upstream for `stream_options.include_usage` on the client's behalf, it also removes what the client
/// did not ask for, so the client sees exactly the stream it would have seen: the usage-only chunk is
/// dropped and `"usage": null` is taken out of the other chunks. Otherwise the bytes pass unchanged.
public struct ResponseMeter: Sendable {
    public enum Forward: Sendable, Equatable {
        /// Forward the chunk as it is.
        case unchanged
        /// Forward these bytes instead (possibly none).
        case replaced([UInt8])
    }

    public private(set) var usage: UsageMeter
    private var framer: SSEEventFramer?

    public init(endpoint: APIEndpoint, streaming: Bool, encoding: TokenEncoding, stripInjectedUsage: Bool) {
        self.usage = UsageMeter(endpoint: endpoint, streaming: streaming, encoding: encoding)
        self.framer = streaming && stripInjectedUsage ? SSEEventFramer() : nil
    }

    /// Whether the body's end marker has passed (`[DONE]`, `message_stop`, `response.completed`), or a
    /// JSON body was parsed.
    public var endReached: Bool { usage.completed }

    public mutating func feed(_ bytes: some Collection<UInt8>) -> Forward {
        guard framer != nil else {
            usage.feed(bytes)
            return .unchanged
        }
        var out: [UInt8] = []
        for event in framer!.feed(bytes) {
            let (forward, json) = Self.strippingInjectedUsage(event)
            if let json {
                usage.observe(json)
            } else {
                usage.observe(rawEvent: event)
            }
            out.append(contentsOf: forward ?? [])
        }
        return .replaced(out)
    }

    /// Ends the body: parses a JSON body, and returns any trailing bytes still to forward.
    public mutating func finish() -> [UInt8] {
        var rest: [UInt8] = []
        if framer != nil {
            rest = framer!.finish()
            usage.feed(rest)
        }
        usage.finish()
        return rest
    }

    /// The event as the client should see it (nil to drop it), and its JSON payload if it has one, so
    /// the usage meter does not parse it again.
    static func strippingInjectedUsage(_ event: [UInt8]) -> (forward: [UInt8]?, json: JSONValue?) {
        // The single `data:` line of an OpenAI chunk.
        guard let (start, end) = dataLine(in: event) else { return (event, nil) }
        let payload = Array(event[start..<end])
        guard let (json, spans) = try? JSONReader.parseTopLevelObject(payload) else { return (event, nil) }
        guard let usageSpan = spans["usage"] else { return (event, json) }
        if json["usage"]?.isNull == false, json["choices"]?.arrayValue?.isEmpty == true {
            return (nil, json)  // the usage-only chunk the client did not ask for
        }
        guard json["usage"]?.isNull == true, let member = memberRange(valueSpan: usageSpan, in: payload) else {
            return (event, json)
        }
        var out = Array(event[..<start])
        out.append(contentsOf: payload[..<member.lowerBound])
        out.append(contentsOf: payload[member.upperBound...])
        out.append(contentsOf: event[end...])
        return (out, json)
    }

    /// The payload range of the event's only `data:` line (nil when it has none, or several).
    private static func dataLine(in event: [UInt8]) -> (Int, Int)? {
        var found: (Int, Int)?
        for line in SSELines(event) where event[line].starts(with: "data:".utf8) {
            if found != nil { return nil }
            var s = line.lowerBound + 5
            if s < line.upperBound && event[s] == 0x20 { s += 1 }
            found = (s, line.upperBound)
        }
        return found
    }

    /// The bytes of a member (`"key": value` and one separating comma) given its value's range.
    private static func memberRange(valueSpan: Range<Int>, in json: [UInt8]) -> Range<Int>? {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        var i = valueSpan.lowerBound - 1
        while i >= 0 && isSpace(json[i]) { i -= 1 }
        guard i >= 0, json[i] == UInt8(ascii: ":") else { return nil }
        i -= 1
        while i >= 0 && isSpace(json[i]) { i -= 1 }
        guard i >= 0, json[i] == UInt8(ascii: "\"") else { return nil }
        i -= 1
        while i >= 0 && json[i] != UInt8(ascii: "\"") { i -= 1 }  // the key has no escaped quotes
        guard i >= 0 else { return nil }
        let keyStart = i
        i -= 1
        while i >= 0 && isSpace(json[i]) { i -= 1 }
        guard i >= 0 else { return nil }
        if json[i] == UInt8(ascii: ",") { return i..<valueSpan.upperBound }
        // First member: take the comma after it instead.
        var j = valueSpan.upperBound
        while j < json.count && isSpace(json[j]) { j += 1 }
        if j < json.count && json[j] == UInt8(ascii: ",") {
            j += 1
            while j < json.count && isSpace(json[j]) { j += 1 }
        }
        return keyStart..<j
    }
}
