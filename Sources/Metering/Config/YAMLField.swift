import Foundation
import Yams

/// A policy file: read from a path or from text the same way, parsed from its root node.
public protocol YAMLDocument {
    static func parse(_ root: YAMLField) throws(ConfigError) -> Self
}

extension YAMLDocument {
    public static func load(path: String) throws(ConfigError) -> Self {
        try parse(YAMLField.load(path: path))
    }

    public static func parse(yaml: String, file: String) throws(ConfigError) -> Self {
        try parse(YAMLField.load(yaml: yaml, file: file))
    }
}

/// A YAML node together with where it came from, so every read can fail with file, line and reason.
///
/// Policy files are hand-written by operators; a typo must stop the gateway with a pointer to the line,
/// never silently fall back to a default.
public struct YAMLField {
    public let node: Node
    public let file: String
    public let path: String

    public init(node: Node, file: String, path: String) {
        self.node = node
        self.file = file
        self.path = path
    }

    /// Reads and parses a policy file.
    public static func load(path: String) throws(ConfigError) -> YAMLField {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, line: nil, reason: "cannot read the file")
        }
        return try load(yaml: text, file: path)
    }

    /// Parses a whole YAML document.
    public static func load(yaml: String, file: String) throws(ConfigError) -> YAMLField {
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError(file: file, line: 1, reason: "the file is empty")
            }
            return YAMLField(node: node, file: file, path: "")
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(
                file: file, line: Self.line(of: error), reason: "invalid YAML: \(Self.problem(of: error))")
        } catch {
            throw ConfigError(file: file, line: nil, reason: "invalid YAML: \(error)")
        }
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default: return nil
        }
    }

    private static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        default: return "\(error)"
        }
    }

    public var line: Int? { node.mark?.line }

    public func fail(_ reason: String) -> ConfigError {
        ConfigError(file: file, line: line, reason: path.isEmpty ? reason : "\(path): \(reason)")
    }

    private func child(_ node: Node, _ name: String) -> YAMLField {
        YAMLField(node: node, file: file, path: path.isEmpty ? name : "\(path).\(name)")
    }

    /// The members of a mapping, failing on any key not in `allowed` (a misspelt key is an error).
    public func mapping(allowed: Set<String>? = nil) throws(ConfigError) -> [(String, YAMLField)] {
        guard let mapping = node.mapping else { throw fail("expected a mapping") }
        var out: [(String, YAMLField)] = []
        var seen: Set<String> = []
        for (key, value) in mapping {
            guard let name = key.string else { throw child(key, "?").fail("keys must be strings") }
            let field = child(value, name)
            if let allowed, !allowed.contains(name) {
                throw YAMLField(node: key, file: file, path: field.path).fail(
                    "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else {
                throw YAMLField(node: key, file: file, path: field.path).fail("duplicate key")
            }
            out.append((name, field))
        }
        return out
    }

    public func optional(_ key: String) -> YAMLField? {
        guard let mapping = node.mapping, let value = mapping[key] else { return nil }
        if case .scalar(let s) = value,
            s.tag == Tag(.null) || (s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string))
        {
            return nil
        }
        return child(value, key)
    }

    public func required(_ key: String) throws(ConfigError) -> YAMLField {
        guard node.mapping != nil else { throw fail("expected a mapping") }
        guard let field = optional(key) else { throw fail("missing required key '\(key)'") }
        return field
    }

    public func sequence() throws(ConfigError) -> [YAMLField] {
        guard let seq = node.sequence else { throw fail("expected a list") }
        return seq.enumerated().map { YAMLField(node: $1, file: file, path: "\(path)[\($0)]") }
    }

    public func string() throws(ConfigError) -> String {
        guard let scalar = node.scalar else { throw fail("expected a string") }
        return scalar.string
    }

    public func nonEmptyString() throws(ConfigError) -> String {
        let s = try string()
        guard !s.isEmpty else { throw fail("must not be empty") }
        return s
    }

    public func int(range: ClosedRange<Int>? = nil) throws(ConfigError) -> Int {
        guard let scalar = node.scalar, let value = Int(scalar.string) else { throw fail("expected an integer") }
        if let range, !range.contains(value) {
            throw fail("must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    public func bool() throws(ConfigError) -> Bool {
        guard let scalar = node.scalar else { throw fail("expected true or false") }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail("expected true or false")
        }
    }

    public func oneOf<T: RawRepresentable>(_ type: T.Type) throws(ConfigError) -> T
    where T: CaseIterable, T.RawValue == String {
        let s = try string()
        guard let value = T(rawValue: s) else {
            throw fail("'\(s)' is not one of: \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}
