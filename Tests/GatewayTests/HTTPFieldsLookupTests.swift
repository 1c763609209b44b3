import HTTPTypes
import Testing

@testable import Gateway

@Suite("HTTPFields lookup")
struct HTTPFieldsLookupTests {
    /// `combined(_:)` gives what the subscript gives, for none, one or several fields of a name among
    /// others, in any order.
    @Test("combined(name) equals fields[name]")
    func matchesSubscript() {
        var rng = SystemRandomNumberGenerator()
        let names: [HTTPField.Name] = [.authorization, .contentType, .connection, .contentLength, .xAPIKeyForTests]
        let values = ["", "a", "Bearer sk-1", "close", "text/event-stream; charset=utf-8", "x, y"]
        for _ in 0..<500 {
            var fields = HTTPFields()
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                fields.append(
                    HTTPField(name: names.randomElement(using: &rng)!, value: values.randomElement(using: &rng)!))
            }
            for name in names { #expect(fields.combined(name) == fields[name], "\(fields)") }
        }
    }
}

extension HTTPField.Name {
    fileprivate static let xAPIKeyForTests = HTTPField.Name("X-Api-Key")!
}
