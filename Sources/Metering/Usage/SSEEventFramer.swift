/// Splits an event stream into complete raw events, byte for byte, so that a filter can drop or rewrite
/// whole events and forward everything else exactly as the upstream sent it.
///
/// An event ends with a blank line (LF, CRLF or CR line ends). A CR at the end of the bytes seen so far
/// waits for the next byte, which may be the LF of a CRLF.
public struct SSEEventFramer: Sendable {
    /// The start of an event not yet complete; empty between whole events.
    private var buffer: [UInt8] = []
    /// Where framing resumes in `buffer`.
    private var scan = 0
    private var lineIsEmpty = true

    public init() {}

    /// Whether part of an event is held from earlier bytes.
    public var isHolding: Bool { !buffer.isEmpty }
    /// How many bytes are held.
    public var heldCount: Int { buffer.count }

    /// Feeds bytes and hands each event they complete (terminating blank line included) to `onEvent`,
    /// in order. With nothing held from before, the events are slices of `chunk` itself, back to back
    /// from its start (nothing is copied); otherwise they are read from the held bytes. Returns whether
    /// `chunk` was exactly whole events, with nothing held before or after.
    @discardableResult
    public mutating func feed(
        _ chunk: UnsafeBufferPointer<UInt8>, _ onEvent: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> Bool {
        var scan = self.scan
        var lineIsEmpty = self.lineIsEmpty
        defer {
            self.scan = scan
            self.lineIsEmpty = lineIsEmpty
        }
        if buffer.isEmpty {
            let consumed = Self.frame(chunk, scan: &scan, lineIsEmpty: &lineIsEmpty, onEvent)
            if consumed < chunk.count { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[consumed...])) }
            scan -= consumed
            return consumed == chunk.count
        }
        buffer.append(contentsOf: chunk)
        let consumed = buffer.withUnsafeBufferPointer {
            Self.frame($0, scan: &scan, lineIsEmpty: &lineIsEmpty, onEvent)
        }
        if consumed > 0 { buffer.removeFirst(consumed) }
        scan -= consumed
        return false
    }

    /// Feeds bytes; returns the raw bytes of each event they complete, terminating blank line included.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
        var events: [[UInt8]] = []
        let chunk = Array(bytes)
        _ = chunk.withUnsafeBufferPointer { chunk in
            feed(chunk) { events.append(Array($0)) }
        }
        return events
    }

    /// Frames `bytes` from `scan`; returns where the first event not yet complete starts.
    private static func frame(
        _ bytes: UnsafeBufferPointer<UInt8>, scan: inout Int, lineIsEmpty: inout Bool,
        _ onEvent: (UnsafeBufferPointer<UInt8>) -> Void
    ) -> Int {
        let count = bytes.count
        var eventStart = 0
        var i = scan
        while i < count {
            let lineEnd = ByteScan.lineEnd(bytes, i, count)
            if lineEnd > i {
                lineIsEmpty = false
                i = lineEnd
                if i == count { break }
            }
            var end = i + 1
            if bytes[i] == 0x0D {
                if end == count { break }
                if bytes[end] == 0x0A { end += 1 }
            }
            if lineIsEmpty {
                onEvent(UnsafeBufferPointer(rebasing: bytes[eventStart..<end]))
                eventStart = end
            }
            lineIsEmpty = true
            i = end
        }
        scan = i
        return eventStart
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
