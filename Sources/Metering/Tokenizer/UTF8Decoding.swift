extension UnsafeBufferPointer<UInt8> {
    /// The scalar at byte offset `i` of valid UTF-8, and its length in bytes. The tokenizer's one UTF-8
    /// decoder: the pre-tokenizer and NFC both read text that Swift's `String` has already validated.
    @inline(__always)
    func scalar(at i: Int) -> (value: UInt32, length: Int) {
        let b0 = UInt32(self[i])
        if b0 < 0x80 { return (b0, 1) }
        if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(self[i + 1]) & 0x3F, 2) }
        if b0 < 0xF0 {
            return ((b0 & 0x0F) << 12 | (UInt32(self[i + 1]) & 0x3F) << 6 | UInt32(self[i + 2]) & 0x3F, 3)
        }
        return (
            (b0 & 0x07) << 18 | (UInt32(self[i + 1]) & 0x3F) << 12 | (UInt32(self[i + 2]) & 0x3F) << 6
                | UInt32(self[i + 3]) & 0x3F, 4
        )
    }
}
