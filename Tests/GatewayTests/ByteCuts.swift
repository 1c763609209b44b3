import NIOCore

/// `bytes` cut at `cuts` (points outside the bytes ignored) into the reads a parser would be fed.
func pieces(of bytes: [UInt8], cutAt cuts: [Int]) -> [ByteBuffer] {
    var out: [ByteBuffer] = []
    var start = 0
    for end in cuts.filter({ $0 > 0 && $0 < bytes.count }).sorted() + [bytes.count] where end >= start {
        out.append(ByteBuffer(bytes: bytes[start..<end]))
        start = end
    }
    return out
}
