import Foundation

/// Secrets the configuration names (provider keys, billing-sink secrets): read from an environment
/// variable or a file (a secret mount), trimmed; never from the configuration itself, never logged.
enum Secrets {
    static func fromEnvironment(_ name: String, _ environment: [String: String]) -> String? {
        nonEmpty(environment[name])
    }

    static func fromFile(_ path: String) -> String? {
        nonEmpty(try? String(contentsOfFile: path, encoding: .utf8))
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let value = text?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }
}
