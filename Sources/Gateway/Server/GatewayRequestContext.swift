import Hummingbird
import Metering
import NIOCore

/// A context that knows the id its response carries in `x-request-id`.
protocol RequestIdentified {
    var requestID: String { get }
}

/// Per-request state: the id the client receives in `x-request-id`, and the caller once a middleware
/// has authenticated it.
public struct GatewayRequestContext: RequestContext, RequestIdentified, Sendable {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String
    /// The client connection the request came on (absent in router tests without a socket).
    let connection: ConnectionWatch?
    /// Set by ``TenantAuthentication`` for the tenant API.
    var caller: AuthenticatedKey?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = RequestIDs.next()
        self.connection = ConnectionWatch.current
    }
}

/// The context of the tenant API's routes: the caller is known and active.
struct TenantRequestContext: ChildRequestContext, RequestIdentified {
    var coreContext: CoreRequestContextStorage
    let requestID: String
    let connection: ConnectionWatch?
    let key: AuthenticatedKey

    init(context: GatewayRequestContext) throws {
        // Only reachable through `TenantAuthentication`, which sets the caller or answers itself.
        guard let key = context.caller else { throw GatewayError.missingKey }
        self.coreContext = context.coreContext
        self.requestID = context.requestID
        self.connection = context.connection
        self.key = key
    }
}

/// Request ids: `req_`, a random per-process nonce and a counter, so making one costs no system call.
enum RequestIDs {
    private static let ids = ProcessUniqueIDs(tag: "req_", counterDigits: 8)

    static func next() -> String { ids.next() }
}
