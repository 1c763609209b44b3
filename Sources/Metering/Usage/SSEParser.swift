/// An incremental Server-Sent Events parser (WHATWG "event stream" rules).
///
/// HTTP chunk boundaries mean nothing: the ``SSEEventFramer`` keeps partial events between calls, and
/// each complete event is parsed here. `data:` lines of one event join with LF; lines starting with `:`
/// are comments; an event without data dispatches nothing.
public struct SSEParser: Sendable {
    public struct Event: Sendable, Equatable {
        public var event: String?
        public var data: String

        public init(event: String?, data: String) {
            self.event = event
            self.data = data
        }
    }

    private var framer = SSEEventFramer()

    public init() {}

    /// Feeds bytes; returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        framer.feed(bytes).compactMap(Self.parse)
    }

    /// One complete event's fields.
    public static func parse(_ event: [UInt8]) -> Event? {
        event.withUnsafeBufferPointer { parse($0) }
    }

    static func parse(_ event: UnsafeBufferPointer<UInt8>) -> Event? {
        var name: String?
        var data: [UInt8] = []
        var hasData = false
        for line in SSELines(event) where !line.isEmpty && event[line.lowerBound] != UInt8(ascii: ":") {
            let colon = event[line].firstIndex(of: UInt8(ascii: ":")) ?? line.upperBound
            var valueStart = colon < line.upperBound ? colon + 1 : colon
            if valueStart < line.upperBound && event[valueStart] == 0x20 { valueStart += 1 }
            let value = event[valueStart..<line.upperBound]
            let field = event[line.lowerBound..<colon]
            if field.elementsEqual("data".utf8) {
                if hasData { data.append(0x0A) }
                data.append(contentsOf: value)
                hasData = true
            } else if field.elementsEqual("event".utf8) {
                name = String(decoding: value, as: UTF8.self)
            }  // id, retry and unknown fields do not matter for metering
        }
        guard hasData else { return nil }
        return Event(event: name, data: String(decoding: data, as: UTF8.self))
    }
}

/// The lines of a complete event, as ranges of its bytes without their line ends (LF, CRLF or CR).
struct SSELines: Sequence, IteratorProtocol {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func next() -> Range<Int>? {
        guard position < bytes.count else { return nil }
        let start = position
        let end = ByteScan.lineEnd(bytes, start, bytes.count)
        position = end + (end + 1 < bytes.count && bytes[end] == 0x0D && bytes[end + 1] == 0x0A ? 2 : 1)
        return start..<end
    }

    /// The payload range of the event's only `data:` line (nil when it has none, or several).
    static func dataLine(in event: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
        var found: Range<Int>?
        for line in SSELines(event) where line.count >= 5 {
            // "data:" byte by byte: `starts(with:)` cost about 400 instructions an event here.
            guard
                event[line.lowerBound] == UInt8(ascii: "d") && event[line.lowerBound + 1] == UInt8(ascii: "a")
                    && event[line.lowerBound + 2] == UInt8(ascii: "t")
                    && event[line.lowerBound + 3] == UInt8(ascii: "a")
                    && event[line.lowerBound + 4] == UInt8(ascii: ":")
            else { continue }
            if found != nil { return nil }
            var s = line.lowerBound + 5
            if s < line.upperBound && event[s] == 0x20 { s += 1 }
            found = s..<line.upperBound
        }
        return found
    }
}
