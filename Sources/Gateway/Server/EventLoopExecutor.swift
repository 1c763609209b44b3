import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
        if GenericJobHook.install() { return true }
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

/// The runtime's own entry point for running a job on an executor (the standard library declares it
/// the same way).
@_silgen_name("swift_job_run")
private func runJob(_ job: UnownedJob, _ executor: UnownedSerialExecutor)

/// Swift concurrency's global hook, pointed at the event loops, running each job as the default global
/// executor does: on the generic executor.
///
/// NIO's own takeover runs global jobs as if isolated to the loop's serial executor, so every call into
/// or out of a nonisolated async function (dozens per request, across Hummingbird and NIO) is a switch
/// that goes back through the loop's queue. On the generic executor those switches, and switches into
/// idle actors, continue in place.
enum GenericJobHook {
    typealias Original = @convention(thin) (UnownedJob) -> Void
    typealias Hook = @convention(thin) (UnownedJob, Original) -> Void

    /// The generic executor is the null executor reference (no identity, no witness table). Not an
    /// optional: the null reference is what `Optional` would use for `nil`.
    static let generic = unsafeBitCast((0, 0), to: UnownedSerialExecutor.self)

    static func install() -> Bool {
        // The hook's type is the runtime's, as NIO assumes it for the same toolchains.
        #if compiler(>=6.6)
            return false
        #else
            return installHook()
        #endif
    }

    private static func installHook() -> Bool {
        guard MemoryLayout<UnownedSerialExecutor>.size == MemoryLayout<(Int, Int)>.size,
            let slot = dlsym(dlopen(nil, RTLD_NOW), "swift_task_enqueueGlobal_hook")?
                .assumingMemoryBound(to: Hook?.self),
            slot.pointee == nil
        else { return false }
        slot.pointee = { job, _ in
            // `any()` stays on the calling loop when called from one of the group's loops.
            MultiThreadedEventLoopGroup.singleton.any().execute { runJob(job, GenericJobHook.generic) }
        }
        return true
    }
}
