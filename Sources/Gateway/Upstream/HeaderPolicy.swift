import Foundation
import HTTPTypes

/// Which headers cross the gateway, in each direction.
///
/// Client credentials never go upstream and the provider key never comes back; hop-by-hop headers stop
/// here; the upstream is asked for `identity` encoding so the meter reads plain bytes.
public enum HeaderPolicy {
    /// RFC 9110 §7.6.1 connection-specific headers, plus the proxy family.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Client headers that must not reach the provider: credentials, and what the gateway sets itself.
    static let dropFromClient: Set<String> = [
        "authorization", "x-api-key", "api-key", "cookie", "host", "content-length", "accept-encoding",
        "x-request-id", "openai-organization", "openai-project", "expect",
    ]

    /// Upstream headers that must not reach the client: cookies and account details of the provider
    /// account, and framing the gateway sets itself.
    static let dropFromUpstream: Set<String> = [
        "set-cookie", "content-length", "openai-organization", "openai-project", "x-request-id",
        "content-encoding",
    ]

    public static func upstreamRequestHeaders(from client: HTTPFields) -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(client.count + 4)
        // Headers the client names in `Connection` are hop-by-hop for this request too (RFC 9110 §7.6.1).
        let named = connectionOptions(client[values: .connection])
        for field in client {
            let name = field.name.canonicalName
            if hopByHop.contains(name) || dropFromClient.contains(name) || name.hasPrefix("proxy-") { continue }
            if !named.isEmpty && named.contains(name) { continue }
            out.append((name, field.value))
        }
        return out
    }

    /// The lower-cased field names listed in `Connection` values.
    static func connectionOptions(_ values: [String]) -> Set<String> {
        var names: Set<String> = []
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingCharacters(in: .whitespaces).lowercased()
                if !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }

    public static func isForwardableResponseHeader(_ name: String) -> Bool {
        let lower = name.lowercased()
        return !(hopByHop.contains(lower) || dropFromUpstream.contains(lower) || lower.hasPrefix("proxy-"))
    }
}
