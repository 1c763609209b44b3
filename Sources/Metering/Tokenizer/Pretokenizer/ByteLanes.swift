/// Tests on the eight bytes of a word at once, each in its lane: bit 7 of a lane of the result says
/// whether that lane's byte x passes. The bytes tested are below 0x80 (callers clear bit 7 first, and
/// mask out the lanes that held other bytes), so no lane carries into the next.
enum ByteLanes {
    static let ones: UInt64 = 0x0101_0101_0101_0101

    /// lo <= x <= hi: x + 0x80 - lo reaches bit 7 from lo on, and x + 0x7F - hi from hi + 1 on.
    @inline(__always)
    static func inRange(_ x: UInt64, _ lo: UInt64, _ hi: UInt64) -> UInt64 {
        (x &+ (0x80 - lo) &* ones) & ~(x &+ (0x7F - hi) &* ones)
    }

    /// x != c: x ^ c is not zero, and 0x7F more reaches bit 7.
    @inline(__always)
    static func notEqual(_ x: UInt64, _ c: UInt64) -> UInt64 {
        (x ^ c &* ones) &+ 0x7F &* ones
    }
}
