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
        let value = counter.add(1, ordering: .relaxed).newValue
        let digits = Self.width(value, atLeast: counterDigits)
        let prefixCount = prefix.utf8.count
        // Written into the string's own storage: two ids a request, and formatting through
        // String(radix:) and padding cost more than the rest of making the record's id.
        return String(unsafeUninitializedCapacity: prefixCount + digits) { out in
            _ = out.initialize(fromContentsOf: prefix.utf8)
            Self.writeHex(value, digits: digits, into: UnsafeMutableBufferPointer(rebasing: out[prefixCount...]))
            return prefixCount + digits
        }
    }

    static func hex(_ value: UInt64, digits: Int) -> String {
        let count = width(value, atLeast: digits)
        return String(unsafeUninitializedCapacity: count) { out in
            writeHex(value, digits: count, into: out)
            return count
        }
    }

    /// The hex digits `value` needs (at least one), or `minimum` if more.
    private static func width(_ value: UInt64, atLeast minimum: Int) -> Int {
        max(minimum, 1, (UInt64.bitWidth - value.leadingZeroBitCount + 3) / 4)
    }

    /// `value` in `digits` lowercase hex digits, zero-padded; `digits` holds all of it.
    private static func writeHex(_ value: UInt64, digits: Int, into out: UnsafeMutableBufferPointer<UInt8>) {
        var v = value
        for i in stride(from: digits - 1, through: 0, by: -1) {
            let d = UInt8(truncatingIfNeeded: v & 0xF)
            out[i] = d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") - 10 + d
            v >>= 4
        }
    }
}
