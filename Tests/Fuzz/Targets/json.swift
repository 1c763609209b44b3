// Fuzz target: JSONReader / JSONWriter.
// - parse and parseTopLevelObject never crash (whatever the bytes);
// - a parsed value serializes to JSON that parses back to an equal value, and serializing is stable;
// - parseTopLevelObject agrees with parse, and each member's span holds exactly that member's value
//   (the gateway rewrites the body through these spans).
import Foundation

@testable import Metering

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    let whole = try? JSONReader.parse(bytes)
    if let value = whole {
        let text = JSONWriter.serialize(value)
        let again: JSONValue
        do {
            again = try JSONReader.parse(text)
        } catch {
            check(false, "serialized value does not parse (\(error)): \(text.debugDescription)")
            return 0
        }
        check(again == value, "round trip changed the value: \(text.debugDescription)")
        check(JSONWriter.serialize(again) == text, "serialization is not stable: \(text.debugDescription)")
    }
    if let (value, spans) = try? JSONReader.parseTopLevelObject(bytes) {
        check(whole != nil, "parseTopLevelObject accepted what parse refused")
        check(whole == value, "parseTopLevelObject and parse disagree")
        guard case .object(let members) = value else {
            check(false, "parseTopLevelObject returned a non-object")
            return 0
        }
        check(spans.count == members.count, "spans \(spans.count) for \(members.count) members")
        for (key, member) in members {
            guard let span = spans[key] else {
                check(false, "no span for member \(key.debugDescription)")
                return 0
            }
            check(span.lowerBound >= 0 && span.upperBound <= bytes.count, "span \(span) outside the input")
            let inSpan = try? JSONReader.parse(Array(bytes[span]))
            check(inSpan == member, "span \(span) of \(key.debugDescription) does not hold its value")
        }
    }
    return 0
}
