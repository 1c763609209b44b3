import Crypto
import Foundation

/// A vocabulary file shipped in the package's `vocab` resources, read only if its SHA-256 matches the
/// shipped SHA256SUMS: a damaged or swapped file never counts tokens.
enum VocabularyResource {
    /// The file's bytes, or why they cannot be used.
    static func verifiedBytes(name: String, extension ext: String) -> Result<[UInt8], VocabularyError> {
        let file = "\(name).\(ext)"
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "vocab"),
            let sums = Bundle.module.url(forResource: "SHA256SUMS", withExtension: nil, subdirectory: "vocab"),
            let data = try? Data(contentsOf: url), let list = try? String(contentsOf: sums, encoding: .utf8)
        else { return .failure(VocabularyError(description: "vocabulary \(name) is not in the package resources")) }
        let expected = list.split(separator: "\n").first { $0.hasSuffix("  \(file)") }?.split(separator: " ").first
        let actual = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        guard let expected, expected == actual else {
            return .failure(VocabularyError(description: "vocabulary \(name) does not match its SHA-256 in SHA256SUMS"))
        }
        return .success([UInt8](data))
    }
}

struct VocabularyError: Error, CustomStringConvertible {
    var description: String
}
