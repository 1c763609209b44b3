import Hummingbird
import Metering
import NIOCore

/// Per-request state: the id the client receives in `x-request-id`.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String
    /// The client connection the request came on (absent in router tests without a socket).
    let connection: ConnectionWatch?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = RequestIDs.next()
        self.connection = ConnectionWatch.current
    }
}

/// Request ids: `req_`, a random per-process nonce and a counter, so making one costs no system call.
enum RequestIDs {
    private static let ids = ProcessUniqueIDs(tag: "req_", counterDigits: 8)

    static func next() -> String { ids.next() }
}
