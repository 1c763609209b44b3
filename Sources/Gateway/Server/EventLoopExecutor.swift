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
        if let n = threads(in: arguments) { NIOSingletons.groupLoopCountSuggestion = n }
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// The `--threads` value in either spelling ArgumentParser accepts (`--threads 4`, `--threads=4`).
    /// This runs before ArgumentParser (which validates the option again), because the event loops must
    /// exist before the first task.
    public static func threads(in arguments: [String]) -> Int? {
        for (i, argument) in arguments.enumerated() {
            if argument == "--" { break }
            let value: String?
            if argument == "--threads" {
                value = i + 1 < arguments.count ? arguments[i + 1] : nil
            } else if argument.hasPrefix("--threads=") {
                value = String(argument.dropFirst("--threads=".count))
            } else {
                continue
            }
            if let value, let n = Int(value), n > 0 { return n }
        }
        return nil
    }
}
