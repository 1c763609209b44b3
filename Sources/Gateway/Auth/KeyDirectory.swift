import Crypto
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Who a request is, once its key checks out.
public struct AuthenticatedKey: Sendable, Equatable {
    public var key: VirtualKey
    public var tenant: Tenant

    public var keyID: String { key.id }
    public var keyPrefix: String { key.prefix }
    public var tenantID: String { tenant.id }
    public var tenantName: String { tenant.name }
}

/// The active keys, held in memory by hash so authentication costs one SHA-256 and one lookup.
///
/// A background service polls the store's `auth_version` row and reloads when it moves, so a key
/// revoked from the CLI (another process) stops working within one poll interval.
public final class KeyDirectory: Sendable {
    private let snapshot = Mutex<[Data: AuthenticatedKey]>([:])
    private let loadedVersion = Mutex<Int>(-1)
    let store: GatewayStore

    public init(store: GatewayStore) throws {
        self.store = store
        try reloadIfChanged()
    }

    /// A hit costs one hash and one lookup. A miss asks the store once, so a key created a moment ago
    /// works at once rather than after the next poll; revocations still come from the poll.
    public func authenticate(secret: String) -> AuthenticatedKey? {
        let hash = GatewayStore.hash(secret: secret)
        if let hit = snapshot.withLock({ $0[hash] }) { return hit }
        guard let entry = try? store.activeCredential(hash: hash) else { return nil }
        let key = AuthenticatedKey(key: entry.key, tenant: entry.tenant)
        snapshot.withLock { $0[hash] = key }
        return key
    }

    public func reloadIfChanged() throws {
        let version = try store.authVersion()
        guard version != loadedVersion.withLock({ $0 }) else { return }
        let entries = try store.activeCredentials()
        var map: [Data: AuthenticatedKey] = [:]
        map.reserveCapacity(entries.count)
        for entry in entries {
            map[entry.key.hash] = AuthenticatedKey(key: entry.key, tenant: entry.tenant)
        }
        snapshot.withLock { $0 = map }
        loadedVersion.withLock { $0 = version }
    }
}

/// Keeps a ``KeyDirectory`` fresh while the gateway runs.
public struct KeyDirectoryRefresher: Service {
    let directory: KeyDirectory
    let interval: Duration
    let logger: Logger

    public init(directory: KeyDirectory, interval: Duration = .milliseconds(250), logger: Logger) {
        self.directory = directory
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                try directory.reloadIfChanged()
            } catch {
                logger.error("key directory reload failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
