/// Takes credentials out of upstream error text before it reaches a tenant.
///
/// Providers echo the key they were sent in some errors ("Incorrect API key provided: sk-…"). The
/// key is the operator's, never the tenant's, so an error body is searched for the exact keys the
/// gateway sent and for anything shaped like a provider key (`sk-`, `sk-ant-`, `sk-proj-` and kin, with
/// or without a masked middle), and each is replaced by `[redacted]`.
enum CredentialFilter {
    static let replacement = Array("[redacted]".utf8)

    /// `text` with every credential replaced.
    static func redact(_ text: String, secrets: [String]) -> String {
        guard let bytes = redacting(Array(text.utf8), secrets: secrets) else { return text }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes with every credential replaced, or nil if there was none.
    static func redacting(_ bytes: [UInt8], secrets: [String]) -> [UInt8]? {
        var out: [UInt8] = []
        var changed = false
        var i = 0
        let keys = secrets.filter { !$0.isEmpty }.map { Array($0.utf8) }
        out.reserveCapacity(bytes.count)
        scan: while i < bytes.count {
            for key in keys where bytes.count - i >= key.count && bytes[i] == key[0] {
                if bytes[i..<i + key.count].elementsEqual(key) {
                    out.append(contentsOf: replacement)
                    i += key.count
                    changed = true
                    continue scan
                }
            }
            if let end = keyShapeEnd(bytes, from: i) {
                out.append(contentsOf: replacement)
                i = end
                changed = true
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return changed ? out : nil
    }

    /// Where a key-shaped token that starts at `start` ends: `sk-` (or `pk-`, `rk-`) at a word start,
    /// then at least 12 bytes of letters, digits, `-`, `_`, `.` or `*` (masked keys).
    private static func keyShapeEnd(_ bytes: [UInt8], from start: Int) -> Int? {
        guard start + 3 < bytes.count, bytes[start + 2] == UInt8(ascii: "-"),
            bytes[start + 1] == UInt8(ascii: "k"),
            [UInt8(ascii: "s"), UInt8(ascii: "p"), UInt8(ascii: "r")].contains(bytes[start])
        else { return nil }
        if start > 0, isKeyByte(bytes[start - 1]) { return nil }
        var end = start + 3
        while end < bytes.count, isKeyByte(bytes[end]) { end += 1 }
        return end - (start + 3) >= 12 ? end : nil
    }

    private static func isKeyByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: "*"):
            return true
        default:
            return false
        }
    }
}
