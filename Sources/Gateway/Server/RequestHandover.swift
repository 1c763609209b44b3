import HummingbirdCore

/// The requests a client connection hands to its task, one at a time: the task waits for the next one,
/// or one is ready before the task asks. Used on the connection's event loop only.
struct RequestHandover {
    /// The task, waiting for the next request.
    private var waiter: UnsafeContinuation<Request?, Never>?
    /// A request handed over before the task asked for it.
    private(set) var ready: Request?
    private var closed = false

    mutating func handOver(_ request: Request) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: request)
        } else {
            ready = request
        }
    }

    /// The task asks for the next request; `nil` once the connection has closed.
    mutating func next(_ continuation: UnsafeContinuation<Request?, Never>) {
        if let ready {
            self.ready = nil
            continuation.resume(returning: ready)
        } else if closed {
            continuation.resume(returning: nil)
        } else {
            waiter = continuation
        }
    }

    /// The connection is gone: the task gets no more requests.
    mutating func close() {
        closed = true
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }
}

/// A handler referred to from another thread, used only on its event loop.
struct WeakReference<Value: AnyObject>: @unchecked Sendable {
    weak var value: Value?
    init(_ value: Value) { self.value = value }
}
