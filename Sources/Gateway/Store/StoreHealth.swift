import Logging
import ServiceLifecycle
import Synchronization

/// Whether the store answers, as a background check last saw it. A request that arrives while it does
/// not is refused with 503 `store_unavailable` before anything is admitted or sent upstream: its record
/// could not be written, and a response that cannot be billed is not served.
public final class StoreHealth: Sendable {
    private let available = Atomic(true)

    public init() {}

    public var isAvailable: Bool { available.load(ordering: .relaxed) }

    /// Records a check's result; returns whether it changed.
    func set(_ value: Bool) -> Bool {
        available.exchange(value, ordering: .relaxed) != value
    }

    /// Pings `store`, giving up after `timeout`.
    static func check(_ store: any BillingStore, timeout: Duration) async -> Bool {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.ping() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw StoreError.invalid("the store did not answer within \(timeout)")
                }
                try await group.next()
                group.cancelAll()
            }
            return true
        } catch {
            return false
        }
    }
}

/// Checks the store every second while the gateway runs and keeps ``StoreHealth`` current.
struct StoreHealthMonitor: Service {
    let store: any BillingStore
    let health: StoreHealth
    let logger: Logger
    var interval: Duration = .seconds(1)
    var timeout: Duration = .seconds(2)

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            let up = await offEventLoop { await StoreHealth.check(store, timeout: timeout) }
            if health.set(up) {
                if up {
                    logger.notice("the store answers again; requests are admitted")
                } else {
                    logger.error("the store does not answer; requests get 503 store_unavailable until it does")
                }
            }
        }
    }
}
