/// An incremental Server-Sent Events parser (WHATWG "event stream" rules).
///
/// HTTP chunk boundaries mean nothing: a line, or a UTF-8 sequence, may be split anywhere, so the parser
/// keeps the partial line between calls. Lines end in LF, CRLF or CR; `data:` lines of one event join
/// with LF; a blank line dispatches the event; lines starting with `:` are comments.
public struct SSEParser: Sendable {
    public struct Event: Sendable, Equatable {
        public var event: String?
        public var data: String

        public init(event: String?, data: String) {
            self.event = event
            self.data = data
        }
    }

    private var line: [UInt8] = []
    private var lastWasCR = false
    private var eventName: String?
    private var data: [UInt8] = []
    private var hasData = false

    public init() {}

    /// Feeds bytes; returns the events they complete.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Event] {
        var events: [Event] = []
        for b in bytes {
            if lastWasCR {
                lastWasCR = false
                if b == 0x0A { continue }  // the LF of a CRLF
            }
            if b == 0x0A || b == 0x0D {
                lastWasCR = b == 0x0D
                if let event = endLine() { events.append(event) }
            } else {
                line.append(b)
            }
        }
        return events
    }

    private mutating func endLine() -> Event? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                eventName = nil
                data.removeAll(keepingCapacity: true)
                hasData = false
            }
            guard hasData else { return nil }
            return Event(event: eventName, data: String(decoding: data, as: UTF8.self))
        }
        if line[0] == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.count
        let field = String(decoding: line[..<colon], as: UTF8.self)
        var valueStart = colon < line.count ? colon + 1 : colon
        if valueStart < line.count && line[valueStart] == 0x20 { valueStart += 1 }
        let value = line[valueStart...]
        switch field {
        case "data":
            if hasData { data.append(0x0A) }
            data.append(contentsOf: value)
            hasData = true
        case "event":
            eventName = String(decoding: value, as: UTF8.self)
        default:
            break  // id, retry and unknown fields do not matter for metering
        }
        return nil
    }
}
