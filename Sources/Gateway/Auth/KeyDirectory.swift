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
    /// Hashes the store recently did not know, so a flood of random keys costs no store read each.
    /// Cleared on every reload, so a key created since is found at the next poll at the latest.
    private let unknown = Mutex<(hashes: Set<Data>, since: ContinuousClock.Instant)>(([], .now))
    static let unknownLimit = 100_000
    private let lookups = Mutex(0)

    /// Store reads made for keys not in memory (a measure of what unknown keys cost).
    public var storeLookups: Int { lookups.withLock { $0 } }
    static let unknownTTL: Duration = .seconds(2)
    let store: any KeyStore

    public init(store: any KeyStore) async throws {
        self.store = store
        try await reloadIfChanged()
    }

    /// A hit costs one hash and one lookup. A miss asks the store once (off the event loop), so a key
    /// created a moment ago works at once rather than after the next poll; revocations still come from
    /// the poll. A hash the store did not know is remembered for a moment.
    public func authenticate(secret: String) async -> AuthenticatedKey? {
        let hash = GatewayStore.hash(secret: secret)
        if let hit = snapshot.withLock({ $0[hash] }) { return hit }
        let knownUnknown = unknown.withLock { u in
            if ContinuousClock.now - u.since > Self.unknownTTL || u.hashes.count >= Self.unknownLimit {
                u = ([], .now)
            }
            return u.hashes.contains(hash)
        }
        if knownUnknown { return nil }
        let store = store
        lookups.withLock { $0 += 1 }
        guard let entry = try? await offEventLoop({ try await store.activeCredential(hash: hash) }) else {
            unknown.withLock { _ = $0.hashes.insert(hash) }
            return nil
        }
        let key = AuthenticatedKey(key: entry.key, tenant: entry.tenant)
        snapshot.withLock { $0[hash] = key }
        return key
    }

    public func reloadIfChanged() async throws {
        let version = try await store.authVersion()
        guard version != loadedVersion.withLock({ $0 }) else { return }
        let entries = try await store.activeCredentials()
        var map: [Data: AuthenticatedKey] = [:]
        map.reserveCapacity(entries.count)
        for entry in entries {
            map[entry.key.hash] = AuthenticatedKey(key: entry.key, tenant: entry.tenant)
        }
        snapshot.withLock { $0 = map }
        unknown.withLock { $0 = ([], .now) }
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
                try await directory.reloadIfChanged()
            } catch {
                logger.error("key directory reload failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
