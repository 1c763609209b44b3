import Hummingbird
import NIOCore
import Synchronization

/// Per-request state: the id the client receives in `x-request-id`.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let requestID: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = RequestIDs.next()
    }
}

/// Request ids: a random per-process prefix and a counter, so making one costs no system call.
enum RequestIDs {
    private static let prefix: String = {
        var g = SystemRandomNumberGenerator()
        let hex = String(g.next() as UInt64, radix: 16)
        return "req_" + String(repeating: "0", count: 16 - hex.count) + hex
    }()
    private static let counter = AtomicCounter()

    static func next() -> String {
        let n = String(counter.increment(), radix: 16)
        return prefix + String(repeating: "0", count: max(0, 8 - n.count)) + n
    }
}

final class AtomicCounter: Sendable {
    private let value = Atomic<UInt64>(0)
    func increment() -> UInt64 { value.add(1, ordering: .relaxed).newValue }
}
