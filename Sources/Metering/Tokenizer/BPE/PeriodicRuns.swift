import Foundation

/// Long runs of one short unit (a megabyte of `/`, of space-tab, of `'`): where backtracking works
/// hardest, taking back nearly a token per byte, and where the result repeats a short block of tokens.
extension BytePairEncoder {
    static let defaultPeriodicFrom = 2 * periodicSample
    /// Bytes encoded from the start of a periodic piece to find its repeating block of tokens.
    static let periodicSample = 4096
    static let longestPeriod = 16

    /// Encodes a sample from the piece's start, finds the block of tokens the sample repeats, and emits
    /// that block as often as it fits before a tail, which is encoded on its own. Returns false, having
    /// emitted nothing, when the piece is not such a run or the result cannot be shown right.
    ///
    /// The result is checked, not assumed: every two neighbours in it are a valid pair (inside the
    /// block and the tail by construction; block after block because the sample has it; block before
    /// tail by asking), and the tokenization in which every two neighbours are valid is the BPE
    /// result, the same fact ``encodeBacktracking(_:_:charCuts:emit:)`` rests on.
    @inline(never)
    func encodePeriodic(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        // The shortest unit the first 64 bytes repeat. If the whole piece repeats a unit of up to 16
        // bytes, it repeats this one too (its length divides that unit's, by Fine and Wilf).
        guard n >= 2 * Self.periodicSample,
            let period = (1...Self.longestPeriod).first(where: { memcmp(piece, piece + $0, 64) == 0 }),
            memcmp(piece, piece + period, n - period) == 0
        else { return false }
        func tokens(_ start: Int, _ length: Int) -> [UInt32]? {
            var out: [UInt32] = []
            guard encodeBacktracking(piece + start, length, emit: { out.append($0) }) else { return nil }
            return out
        }
        // The sample, a whole number of units. It may begin with a few tokens of its own (the head:
        // runs of space-tab begin with a lone space); then comes a block, the shortest run of tokens
        // that covers a whole number of units and that the sample repeats right after.
        let sampleLength = Self.periodicSample / period * period
        guard let sample = tokens(0, sampleLength) else { return false }
        let length = merges.length.base
        var found: (head: Int, headBytes: Int, count: Int, bytes: Int)?
        var headBytes = 0
        search: for head in 0..<min(8, sample.count) {
            var count = 0
            var bytes = 0
            while bytes <= sampleLength / 4 && head + 2 * (count + 1) <= sample.count {
                bytes += Int(length[Int(sample[head + count])])
                count += 1
                let first = head..<(head + count)
                if bytes % period == 0 && sample[(head + count)..<(head + 2 * count)] == sample[first] {
                    found = (head, headBytes, count, bytes)
                    break search
                }
            }
            headBytes += Int(length[Int(sample[head])])
        }
        guard let block = found else { return false }
        // The tail: at least as long as the sample, so that it holds whatever the end of the piece does
        // differently, encoded on its own.
        let repeats = (n - block.headBytes - sampleLength) / block.bytes
        let tailStart = block.headBytes + repeats * block.bytes
        guard repeats > 0, let tail = tokens(tailStart, n - tailStart),
            merges.isValidPair(sample[block.head + block.count - 1], tail[0])
        else { return false }
        for k in 0..<block.head { emit(sample[k]) }
        for _ in 0..<repeats {
            for k in block.head..<(block.head + block.count) { emit(sample[k]) }
        }
        for token in tail { emit(token) }
        return true
    }
}
