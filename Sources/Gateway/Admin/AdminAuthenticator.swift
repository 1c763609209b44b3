import Crypto
import Foundation
import HTTPTypes

/// The admin API's bearer token, taken from `GATEWAY_ADMIN_TOKEN`. Without it the admin API is off.
struct AdminAuthenticator: Sendable {
    private let tokenDigest: [UInt8]?

    init(environment: [String: String]) {
        let token = environment["GATEWAY_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        tokenDigest = token.map { Array(SHA256.hash(data: Data($0.utf8))) }
    }

    var isEnabled: Bool { tokenDigest != nil }

    /// Compares in constant time: both sides are hashed, and every byte of the digests is compared.
    func authorize(_ headers: HTTPFields) throws(GatewayError) {
        guard let tokenDigest else {
            throw GatewayError(
                status: 403, message: "The admin API is disabled: set GATEWAY_ADMIN_TOKEN to enable it.",
                openAIType: "permission_error", code: "admin_disabled")
        }
        guard let auth = headers[.authorization], auth.count > 7, auth.prefix(7).lowercased() == "bearer " else {
            throw GatewayError(
                status: 401, message: "The admin API needs 'Authorization: Bearer <admin token>'.",
                openAIType: "authentication_error", code: "invalid_admin_token")
        }
        let given = Array(SHA256.hash(data: Data(auth.dropFirst(7).utf8)))
        var difference: UInt8 = 0
        for i in 0..<tokenDigest.count { difference |= tokenDigest[i] ^ given[i] }
        guard difference == 0 else {
            throw GatewayError(
                status: 401, message: "The admin token is not valid.", openAIType: "authentication_error",
                code: "invalid_admin_token")
        }
    }
}
