import Testing

@testable import Metering

@Suite("Process-unique ids")
struct ProcessUniqueIDsTests {
    @Test("hex digits are zero-padded to the width asked, and never cut")
    func hex() {
        #expect(ProcessUniqueIDs.hex(0, digits: 4) == "0000")
        #expect(ProcessUniqueIDs.hex(0, digits: 0) == "0")
        #expect(ProcessUniqueIDs.hex(0xabc, digits: 8) == "00000abc")
        #expect(ProcessUniqueIDs.hex(0x1234_5678_9abc_def0, digits: 16) == "123456789abcdef0")
        #expect(ProcessUniqueIDs.hex(UInt64.max, digits: 4) == "ffffffffffffffff")
        for value in [UInt64(1), 15, 16, 255, 4096, 1 << 40] {
            #expect(ProcessUniqueIDs.hex(value, digits: 1) == String(value, radix: 16))
        }
    }

    @Test("ids are the tag, a 16-digit nonce and a counter that grows past its width")
    func ids() {
        let ids = ProcessUniqueIDs(tag: "t_", counterDigits: 1)
        let made = (0..<20).map { _ in ids.next() }
        let nonce = made[0].dropFirst(2).prefix(16)
        #expect(nonce.count == 16 && nonce.allSatisfy(\.isHexDigit))
        #expect(made.allSatisfy { $0.hasPrefix("t_" + nonce) })
        #expect(made.map { String($0.dropFirst(18)) } == (1...20).map { String($0, radix: 16) })
        #expect(Set(made).count == made.count)
    }
}
