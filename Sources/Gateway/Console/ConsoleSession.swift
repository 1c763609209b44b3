import Crypto
import Foundation

/// Who a console session belongs to: the operator (every tenant) or one tenant's key.
struct ConsoleSession: Sendable, Equatable {
    enum Role: String, Sendable {
        case admin
        case tenant
    }

    var role: Role
    /// Empty for the operator.
    var tenantID: String
    /// The key the tenant signed in with (empty for the operator): the session ends when it is revoked.
    var keyID: String
    var expires: Date
}

/// The console's session cookie: `payload.signature`, both base64url, the payload
/// `v1|role|tenant|key|expiry|nonce` and the signature its HMAC-SHA256.
///
/// Stateless, so nothing is kept per session. The key is derived from the admin token when there is one,
/// so replicas sharing the token accept each other's cookies and changing the token ends every session;
/// without a token it is random per process (a restart signs everyone out).
struct ConsoleSessions: Sendable {
    static let cookieName = "gw_console"
    static let lifetime: TimeInterval = 3600
    private let key: SymmetricKey

    init(adminToken: String?) {
        if let adminToken, !adminToken.isEmpty {
            // A derived key, never the token itself, so the cookie's MAC key is good for nothing else.
            let derived = HMAC<SHA256>.authenticationCode(
                for: Data("gateway console session key v1".utf8), using: SymmetricKey(data: Data(adminToken.utf8)))
            key = SymmetricKey(data: Data(derived))
        } else {
            key = SymmetricKey(size: .bits256)
        }
    }

    /// The cookie value for `session`.
    func issue(_ session: ConsoleSession) -> String {
        var nonce = [UInt8](repeating: 0, count: 12)
        var generator = SystemRandomNumberGenerator()
        for i in nonce.indices { nonce[i] = generator.next() }
        let fields = [
            "v1", session.role.rawValue, session.tenantID, session.keyID,
            String(Int64(session.expires.timeIntervalSince1970)), Self.base64URL(Data(nonce)),
        ]
        let payload = Data(fields.joined(separator: "|").utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: payload, using: key)
        return Self.base64URL(payload) + "." + Self.base64URL(Data(mac))
    }

    /// The session a cookie value holds, if its signature is ours (checked in constant time) and it has
    /// not expired at `now`.
    func verify(_ value: String, now: Date = Date()) -> ConsoleSession? {
        let parts = value.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let payload = Self.data(base64URL: parts[0]), let mac = Self.data(base64URL: parts[1]),
            HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: payload, using: key),
            let text = String(data: payload, encoding: .utf8)
        else { return nil }
        let fields = text.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 6, fields[0] == "v1", let role = ConsoleSession.Role(rawValue: fields[1]),
            let seconds = Int64(fields[4])
        else { return nil }
        let expires = Date(timeIntervalSince1970: TimeInterval(seconds))
        // Expired, or further out than a session ever lasts: refused either way.
        guard expires > now, expires <= now.addingTimeInterval(Self.lifetime + 60) else { return nil }
        guard (role == .admin) == fields[2].isEmpty, (role == .admin) == fields[3].isEmpty else { return nil }
        return ConsoleSession(role: role, tenantID: fields[2], keyID: fields[3], expires: expires)
    }

    /// `Set-Cookie` for a new session: only for the console's paths, out of scripts' reach, never sent
    /// on a cross-site request, and gone after `lifetime` (the payload's expiry is checked as well).
    static func setCookie(_ value: String, secure: Bool) -> String {
        "\(cookieName)=\(value); Path=/console; Max-Age=\(Int(lifetime)); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    /// `Set-Cookie` that removes the session from the browser.
    static func clearCookie(secure: Bool) -> String {
        "\(cookieName)=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// A field must not hold the separator (ids never do; this refuses anything odd before signing).
    static func isPlainField(_ text: String) -> Bool { !text.contains("|") }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func data(base64URL text: Substring) -> Data? {
        guard text.utf8.allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "=") })
        else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.utf8.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
