import Synchronization

/// Ids that are unique across processes and cost no system call to make: a tag, a random nonce drawn
/// once per process, and a counter.
///
/// Within one process the ids of a kind increase, so a database index on them grows at its right edge
/// instead of touching a random page per insert.
public final class ProcessUniqueIDs: Sendable {
    private let prefix: String
    private let counterDigits: Int
    private let counter = Atomic<UInt64>(0)

    /// `tag`, then 16 hex digits of nonce, then `counterDigits` hex digits of counter (more if it outgrows them).
    public init(tag: String, counterDigits: Int) {
        var generator = SystemRandomNumberGenerator()
        self.prefix = tag + Self.hex(generator.next(), digits: 16)
        self.counterDigits = counterDigits
    }

    public func next() -> String {
        prefix + Self.hex(counter.add(1, ordering: .relaxed).newValue, digits: counterDigits)
    }

    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return text.count >= digits ? text : String(repeating: "0", count: digits - text.count) + text
    }
}
