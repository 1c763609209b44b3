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
        return bytes.withContiguousStorageIfAvailable { feedFraming($0) }
            ?? Array(bytes).withUnsafeBufferPointer { feedFraming($0) }
    }

    /// What the stage does with one event.
    enum Strip: Equatable {
        case keep
        case drop
        case replace([UInt8])
    }

    /// Frames `chunk` into events and meters each. When every event stays as it came and the chunk was
    /// whole events, the chunk goes on unchanged and nothing is copied: the common case.
    private mutating func feedFraming(_ chunk: UnsafeBufferPointer<UInt8>) -> Forward {
        var framer = self.framer!
        self.framer = nil
        defer { self.framer = framer }
        // While nothing is held, events are slices of `chunk` from its start: the kept ones before the
        // first change are then copied in one go, only when a change comes.
        let direct = !framer.isHolding
        var out: [UInt8]?
        let whole = framer.feed(chunk) { event in
            let strip = meterStripping(event)
            if out == nil {
                if strip == .keep && direct { return }
                let before = direct ? event.baseAddress! - chunk.baseAddress! : 0
                out = Array(UnsafeBufferPointer(rebasing: chunk[..<before]))
            }
            switch strip {
            case .keep: out!.append(contentsOf: event)
            case .drop: break
            case .replace(let bytes): out!.append(contentsOf: bytes)
            }
        }
        if let out { return .replaced(out) }
        if whole { return .unchanged }
        guard direct else { return .replaced([]) }
        // Only kept events, read directly, with an unfinished one held back: forward the complete ones.
        return .replaced(Array(UnsafeBufferPointer(rebasing: chunk[..<(chunk.count - framer.heldCount)])))
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
        event.withUnsafeBufferPointer { buffer in
            switch meterStripping(buffer) {
            case .keep: event
            case .drop: nil
            case .replace(let bytes): bytes
            }
        }
    }

    /// Meters one event and says what the client should see of it.
    mutating func meterStripping(_ event: UnsafeBufferPointer<UInt8>) -> Strip {
        // Only OpenAI chunks carry usage the gateway asked for; anything else is metered as it is.
        guard usage.endpoint != .messages && usage.endpoint != .responses else {
            usage.observe(rawEvent: event)
            return .keep
        }
        // The single `data:` line of an OpenAI chunk; anything else (`[DONE]`, comments) as it is.
        guard let payload = SSELines.dataLine(in: event) else {
            usage.observe(rawEvent: event)
            return .keep
        }
        var scan = JSONScan(event)
        guard let top = scan.validate(payload), event[top.lowerBound] == UInt8(ascii: "{") else {
            usage.observe(rawEvent: event)
            return .keep
        }
        let (usageSpan, choices) = usage.observeOpenAIChunk(scan, top)
        guard let usageSpan else { return .keep }
        if !scan.isNull(usageSpan), let choices, scan.isEmptyArray(choices) {
            return .drop  // the usage-only chunk the client did not ask for
        }
        guard scan.isNull(usageSpan), let member = Self.memberRange(valueSpan: usageSpan, in: event, within: top)
        else { return .keep }
        var out = Array(UnsafeBufferPointer(rebasing: event[..<member.lowerBound]))
        out.append(contentsOf: UnsafeBufferPointer(rebasing: event[member.upperBound...]))
        return .replace(out)
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
