/// Splits an event stream into complete raw events, byte for byte, so that a filter can drop or rewrite
/// whole events and forward everything else exactly as the upstream sent it.
///
/// An event ends with a blank line (LF, CRLF or CR line ends). A CR at the end of the bytes seen so far
/// waits for the next byte, which may be the LF of a CRLF.
public struct SSEEventFramer: Sendable {
    private var buffer: [UInt8] = []
    private var scan = 0
    private var lineIsEmpty = true

    public init() {}

    /// Feeds bytes; returns the raw bytes of each event they complete, terminating blank line included.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var events: [[UInt8]] = []
        var eventStart = 0
        while scan < buffer.count {
            let b = buffer[scan]
            guard b == 0x0A || b == 0x0D else {
                lineIsEmpty = false
                scan += 1
                continue
            }
            var end = scan + 1
            if b == 0x0D {
                if end == buffer.count { break }
                if buffer[end] == 0x0A { end += 1 }
            }
            if lineIsEmpty {
                events.append(Array(buffer[eventStart..<end]))
                eventStart = end
            }
            lineIsEmpty = true
            scan = end
        }
        if eventStart > 0 {
            buffer.removeFirst(eventStart)
            scan -= eventStart
        }
        return events
    }

    /// What is left of an event the stream never finished.
    public mutating func finish() -> [UInt8] {
        defer {
            buffer = []
            scan = 0
            lineIsEmpty = true
        }
        return buffer
    }
}
