import NIOCore

/// Reads of a connection held back while what it read waits for its consumer: a `read` NIO asks for
/// meanwhile goes out when the gate opens. Used by a handler on its event loop.
struct ReadGate {
    private(set) var paused = false
    private var wanted = false

    mutating func pause() { paused = true }

    /// Opens the gate without reading yet (the caller may pause it again first).
    mutating func unpause() { paused = false }

    /// Opens the gate and sends on a read asked for while it was shut.
    mutating func resume(_ context: ChannelHandlerContext?) {
        paused = false
        if wanted, let context {
            wanted = false
            context.read()
        }
    }

    /// The handler's `read(context:)`.
    mutating func read(_ context: ChannelHandlerContext) {
        if paused {
            wanted = true
        } else {
            context.read()
        }
    }
}
