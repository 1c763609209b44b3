// Fuzz target: the tokenizer, for o200k_base, cl100k_base, qwen and deepseek_v3.
// Input: [encoding][settle threshold][cut][text...] (text decoded as lossy UTF-8; run with -max_len=4096).
// - nothing crashes;
// - count(text) == encode(text).count;
// - decoding the tokens gives the text back (its NFC for qwen, which normalizes);
// - a StreamingTokenCounter fed the text in pieces (at most 16), settling often, ends at the same count;
// - deepseek_v3: merging every piece by rank buckets gives the same tokens as the default routes.
import Foundation

@testable import Metering

@_cdecl("LLVMFuzzerInitialize")
public func fuzzTokenizerInitialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    preloadEncodings()
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let config = input.byte()
    let threshold = 1 + Int(input.byte())
    let cutByte = Int(input.byte())
    let bytes = input.rest()
    let text = String(decoding: bytes, as: UTF8.self)
    // The encoding the input picks is tried with all checks; the others just count and encode.
    let chosen = Int(config) % TokenEncoding.names.count
    for i in TokenEncoding.names.indices {
        let enc = encoding(i)
        let tokens = enc.encode(text)
        let n = enc.count(text)
        check(n == tokens.count, "\(enc.name): count \(n) != encode().count \(tokens.count) for \(hex(bytes))")
        guard i == chosen else { continue }
        if enc.byteLevel != nil {
            var bucketed: [Int] = []
            enc.forEachToken(text, options: EncodingOptions(longMergeFrom: 2)) { bucketed.append(Int($0)) }
            check(bucketed == tokens, "\(enc.name): rank buckets differ from the default routes for \(hex(bytes))")
        }
        let expected = Array(enc.normalizedForCounting(text).utf8)
        check(enc.decodeBytes(tokens) == expected, "\(enc.name): decode(encode(text)) != text for \(hex(bytes))")
        var counter = StreamingTokenCounter(encoding: enc, settleThreshold: threshold)
        let step = max(1 + cutByte, bytes.count / 16 + 1)
        for start in stride(from: 0, to: bytes.count, by: step) {
            counter.append(bytes: bytes[start..<min(start + step, bytes.count)])
        }
        check(
            counter.finalCount == n,
            "\(enc.name): streaming count \(counter.finalCount) != \(n) (threshold \(threshold), step \(step)) for \(hex(bytes))"
        )
    }
    return 0
}
