import Foundation
import HTTPTypes
import Hummingbird

/// Stage 1: who is calling. Accepts `Authorization: Bearer KEY` (OpenAI SDKs) and `x-api-key: KEY`
/// (Anthropic SDK).
struct Authenticator: Sendable {
    let directory: KeyDirectory

    /// The key and its tenant, active or not; throws 401 for a missing, unknown or revoked key.
    func identify(_ headers: HTTPFields) async throws(GatewayError) -> AuthenticatedKey {
        let secret: Substring
        if let auth = headers.combined(.authorization) {
            // By bytes: the scheme is ASCII, and counting or lowercasing Characters cost ~4k instructions.
            let bytes = auth.utf8
            guard bytes.count > 7, zip(bytes.prefix(7), "bearer ".utf8).allSatisfy({ $0 | 0x20 == $1 }) else {
                throw GatewayError.invalidKey
            }
            secret = Substring(bytes.dropFirst(7))
        } else if let apiKey = headers.combined(.xAPIKey) {
            secret = apiKey[...]
        } else {
            throw GatewayError.missingKey
        }
        let trimmed = Self.trimmingSpaces(secret)
        guard !trimmed.isEmpty else { throw GatewayError.missingKey }
        guard let key = await directory.authenticate(secret: trimmed) else { throw GatewayError.invalidKey }
        return key
    }

    /// A key whose tenant may make requests now: 401 as ``identify(_:)``, 403 for a suspended tenant.
    func authenticate(_ headers: HTTPFields) async throws(GatewayError) -> AuthenticatedKey {
        let key = try await identify(headers)
        try Self.checkActive(key)
        return key
    }

    static func checkActive(_ key: AuthenticatedKey) throws(GatewayError) {
        guard key.tenant.isActive else { throw GatewayError.tenantSuspended }
    }

    /// The secret without surrounding spaces and tabs (the only whitespace a header value can hold).
    static func trimmingSpaces(_ value: Substring) -> String {
        let utf8 = value.utf8
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = utf8.firstIndex(where: { !isSpace($0) }), let last = utf8.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(value[first...last])
    }
}
