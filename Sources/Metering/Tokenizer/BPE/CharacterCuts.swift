/// Cuts between three-byte characters (CJK ideographs, kana, Hangul and their punctuation): the rule
/// of `Cuts.swift` at the boundary between two characters (``MergeTables/isCharCut(_:)``). A run of
/// rare ideographs, which BPE makes one or two tokens per character, then merges character by
/// character, where backtracking tries and takes back candidates all along it.
extension BytePairEncoder {
    /// Which pieces are searched: none (the reference in tests), those of 64 bytes or more, or those of
    /// two characters or more (``TokenEncoding/charCutSearch``).
    enum CharCutSearch: UInt8 {
        case none, longPieces, everyPiece
    }

    /// Whether ``charCutSearch`` takes the piece (not yet known to have a cut).
    @inline(__always)
    func searchesCharCuts(_ piece: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        let from =
            switch charCutSearch {
            case .none: Int.max
            case .longPieces: 64
            case .everyPiece: 6
            }
        return n >= from && piece[n - 1] >= 0x80
    }

    /// ``encodeAtCuts(_:_:emit:)`` for text of three-byte characters, at the boundaries between them:
    /// from the start of the piece (or its second byte, after one ASCII byte) up to the first character
    /// of another length. Each part is one token only if BPE can make it, and is not searched again
    /// (``encodeUncut(_:_:isPiece:emit:)``).
    ///
    /// Only when at least half of the first (up to) eight boundaries are cuts: in prose, whose words are
    /// tokens, the parts would be long and the search only cost time. Returns false, having emitted
    /// nothing, when the piece is not searched or has no cut.
    @inline(never)
    func encodeAtCharCuts(_ piece: UnsafePointer<UInt8>, _ n: Int, emit: (UInt32) -> Void) -> Bool {
        let first = piece[0] < 0x80 ? 1 : 0
        var checked = 0
        var cuts = 0
        var i = first
        while checked < 8 && i + 6 <= n && Self.beginsCharPair(piece + i) {
            i += 3
            checked += 1
            if merges.isCharCut(piece + i) { cuts += 1 }
        }
        guard cuts > 0 && 2 * cuts >= checked else { return false }
        var start = 0
        i = first
        while i + 6 <= n && Self.beginsCharPair(piece + i) {
            i += 3
            if merges.isCharCut(piece + i) {
                encodeUncut(piece + start, i - start, isPiece: false, emit: emit)
                start = i
            }
        }
        encodeUncut(piece + start, n - start, isPiece: false, emit: emit)
        return true
    }

    /// Whether `p[0..<6]` are two three-byte UTF-8 characters, the bytes
    /// ``MergeTables/isCharCut(_:)`` reads at the boundary between them: by their shapes, so that any
    /// bytes, not only valid UTF-8, are judged right. Two loads.
    @inline(__always)
    static func beginsCharPair(_ p: UnsafePointer<UInt8>) -> Bool {
        let four = UInt32(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt32.self))
        let two = UInt16(littleEndian: UnsafeRawPointer(p + 4).loadUnaligned(as: UInt16.self))
        return four & 0xF0C0_C0F0 == 0xE080_80E0 && two & 0xC0C0 == 0x8080
    }
}
