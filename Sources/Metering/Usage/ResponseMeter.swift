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
            if let forward = meterStripping(event) { out.append(contentsOf: forward) }
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

    /// Meters one event and returns it as the client should see it (nil to drop it).
    mutating func meterStripping(_ event: [UInt8]) -> [UInt8]? {
        // Only OpenAI chunks carry usage the gateway asked for; anything else is metered as it is.
        guard usage.endpoint != .messages && usage.endpoint != .responses else {
            usage.observe(rawEvent: event)
            return event
        }
        // The single `data:` line of an OpenAI chunk; anything else (`[DONE]`, comments) as it is.
        guard let payload = Self.dataLine(in: event) else {
            usage.observe(rawEvent: event)
            return event
        }
        return event.withUnsafeBufferPointer { buffer -> [UInt8]? in
            let scan = JSONScan(buffer)
            guard let top = scan.validate(payload), buffer[top.lowerBound] == UInt8(ascii: "{") else {
                usage.observe(rawEvent: event)
                return event
            }
            let (usageSpan, choices) = usage.observeOpenAIChunk(scan, top)
            guard let usageSpan else { return event }
            if !scan.isNull(usageSpan), let choices, scan.isEmptyArray(choices) {
                return nil  // the usage-only chunk the client did not ask for
            }
            guard scan.isNull(usageSpan), let member = Self.memberRange(valueSpan: usageSpan, in: buffer, within: top)
            else { return event }
            var out = Array(buffer[..<member.lowerBound])
            out.append(contentsOf: buffer[member.upperBound...])
            return out
        }
    }

    /// The payload range of the event's only `data:` line (nil when it has none, or several).
    private static func dataLine(in event: [UInt8]) -> Range<Int>? {
        var found: Range<Int>?
        for line in SSELines(event) where event[line].starts(with: "data:".utf8) {
            if found != nil { return nil }
            var s = line.lowerBound + 5
            if s < line.upperBound && event[s] == 0x20 { s += 1 }
            found = s..<line.upperBound
        }
        return found
    }

    /// The bytes of a member (`"key": value` and one separating comma) given its value's range, inside
    /// the object `object`.
    private static func memberRange(
        valueSpan: Range<Int>, in json: UnsafeBufferPointer<UInt8>, within object: Range<Int>
    ) -> Range<Int>? {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        let first = object.lowerBound
        var i = valueSpan.lowerBound - 1
        while i >= first && isSpace(json[i]) { i -= 1 }
        guard i >= first, json[i] == UInt8(ascii: ":") else { return nil }
        i -= 1
        while i >= first && isSpace(json[i]) { i -= 1 }
        guard i >= first, json[i] == UInt8(ascii: "\"") else { return nil }
        i -= 1
        while i >= first && json[i] != UInt8(ascii: "\"") { i -= 1 }  // the key has no escaped quotes
        guard i >= first else { return nil }
        let keyStart = i
        i -= 1
        while i >= first && isSpace(json[i]) { i -= 1 }
        guard i >= first else { return nil }
        if json[i] == UInt8(ascii: ",") { return i..<valueSpan.upperBound }
        // First member: take the comma after it instead.
        var j = valueSpan.upperBound
        while j < object.upperBound && isSpace(json[j]) { j += 1 }
        if j < object.upperBound && json[j] == UInt8(ascii: ",") {
            j += 1
            while j < object.upperBound && isSpace(json[j]) { j += 1 }
        }
        return keyStart..<j
    }
}
