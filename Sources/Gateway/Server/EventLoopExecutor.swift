import NIOCore
import NIOPosix

/// Runs Swift concurrency on NIO's event loops.
///
/// Without this, every request hops between an event-loop thread (socket I/O) and Swift's global
/// executor (handlers) several times, which costs more than the proxying itself. Must be called on the
/// main thread before any task starts, so the executable calls it first thing.
public enum EventLoopExecutor {
    /// Sizes the singleton event-loop group from `--threads N` in `arguments` (default: one per core)
    /// and installs it as the global executor. Returns whether the takeover happened.
    @discardableResult
    public static func install(arguments: [String]) -> Bool {
        if let i = arguments.firstIndex(of: "--threads"), i + 1 < arguments.count, let n = Int(arguments[i + 1]),
            n > 0
        {
            NIOSingletons.groupLoopCountSuggestion = n
        }
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
