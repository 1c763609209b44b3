import Foundation
import Logging
import Metering
import ServiceLifecycle
import UnixSignals

/// Reloads the price book and the plans on SIGHUP, or when either file changes (checked every second).
///
/// A reload is all or nothing: both files must parse and the plans must name only routed models, or
/// the old policies stay in force and the error is logged. Requests in flight keep the reservation and
/// price they were admitted with; new requests see the new policies. Providers and models
/// (`gateway.yaml`) need a restart.
final class PolicyReloader: Service, Sendable {
    private let configPath: String?
    private let policy: PolicyService
    private let gateway: GatewayConfig
    private let logger: Logger

    init(configPath: String?, gateway: GatewayConfig, policy: PolicyService, logger: Logger) {
        self.configPath = configPath
        self.gateway = gateway
        self.policy = policy
        self.logger = logger
    }

    /// Re-reads the policy files; returns whether the new policies are in force.
    @discardableResult
    func reload(reason: String) -> Bool {
        guard let configPath else { return false }
        do {
            let fresh = try Policies.load(configPath: configPath)
            var merged = fresh
            merged.gateway = gateway  // providers and models stay as started
            try merged.validatePlans()
            policy.replace(plans: merged.plans, prices: merged.prices)
            logger.notice(
                "policies reloaded",
                metadata: [
                    "reason": "\(reason)", "plans": "\(merged.plans.plans.keys.sorted().joined(separator: ","))",
                ])
            return true
        } catch {
            logger.error(
                "policy reload refused; the previous policies stay in force",
                metadata: ["reason": "\(reason)", "error": "\(error)"])
            return false
        }
    }

    private func policyFiles() -> [String] {
        guard let configPath else { return [] }
        let directory = (configPath as NSString).deletingLastPathComponent
        return [gateway.priceBookFile, gateway.plansFile].map {
            $0.hasPrefix("/") ? $0 : (directory as NSString).appendingPathComponent($0)
        }
    }

    private func fileStamps(_ files: [String]) -> [String: FileStamp] {
        var out: [String: FileStamp] = [:]
        for file in files { out[file] = FileStamp(path: file) }
        return out
    }

    /// What tells a policy file changed: the file it resolves to (through symlinks), its inode, size and
    /// modification time. A Kubernetes ConfigMap swaps a `..data` symlink to a new directory and leaves
    /// the file's own symlink untouched, so the link's times never move; the target's inode does.
    struct FileStamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int

        init?(path: String) {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            device = UInt64(info.st_dev)
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modifiedSeconds = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
        }
    }

    func run() async throws {
        guard configPath != nil else {
            try? await gracefulShutdown()
            return
        }
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in signals.cancelOnGracefulShutdown() { self.reload(reason: "SIGHUP") }
            }
            group.addTask {
                var last = self.fileStamps(self.policyFiles())
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .seconds(1))
                    let now = self.fileStamps(self.policyFiles())
                    if now != last {
                        last = now
                        self.reload(reason: "file changed")
                    }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}
