import Foundation
import Metering
import Synchronization

/// Provider keys and circuit breakers: which key a request uses and whether a provider is tried at all.
///
/// A provider may list several keys (a key pool): a request takes the key with the fewest requests in
/// flight among those not resting; a key that answers 429 rests until the reset the provider names; a key
/// that answers 401 or 403 is taken out (and reported) until the gateway restarts. A provider that fails
/// `breakerThreshold` times in a row (unreachable, timed out, 5xx) is skipped for `cooldown`, then let
/// through one request at a time (half-open) until one succeeds.
final class ProviderHealth: Sendable {
    struct Key: Sendable {
        /// The variable or file the key came from: what records, logs and `/metrics` name.
        var id: String
        var secret: String
    }

    /// A key taken for one request, handed back with ``finish(_:status:headers:failed:now:)``.
    struct Lease: Sendable {
        var provider: String
        var index: Int?
        var key: Key?
    }

    enum Circuit: String, Sendable {
        case closed
        case open
        case halfOpen = "half_open"
    }

    private struct KeyState {
        var outstanding = 0
        var restUntil = Date.distantPast
        var disabled: String?
    }

    private struct Breaker {
        var failures = 0
        var openUntil: Date?
        var probing = false
    }

    private struct State {
        var keys: [String: [KeyState]] = [:]
        var breakers: [String: Breaker] = [:]
        /// The key each provider handed out last: ties go to the next one, round robin.
        var lastPick: [String: Int] = [:]
    }

    static let breakerThreshold = 5
    static let cooldown: TimeInterval = 10

    private let keys: [String: [Key]]
    /// Providers (not mock) with no key at all, and what to do about it.
    let missing: [String: String]
    private let state: Mutex<State>

    init(config: GatewayConfig, environment: [String: String]) {
        var keys: [String: [Key]] = [:]
        var missing: [String: String] = [:]
        for provider in config.providers.values {
            var found: [Key] = []
            func env(_ name: String) {
                if let value = Secrets.fromEnvironment(name, environment) { found.append(Key(id: name, secret: value)) }
            }
            func file(_ path: String) {
                if let value = Secrets.fromFile(path) {
                    found.append(Key(id: (path as NSString).lastPathComponent, secret: value))
                }
            }
            if let name = provider.apiKeyEnv { env(name) }
            if let path = provider.apiKeyFile, found.isEmpty { file(path) }
            provider.apiKeyEnvs.forEach(env)
            provider.apiKeyFiles.forEach(file)
            keys[provider.name] = found
            if found.isEmpty && provider.kind != .mock {
                let names = ([provider.apiKeyEnv].compactMap { $0 } + provider.apiKeyEnvs).joined(separator: ", ")
                missing[provider.name] = names.isEmpty ? "its key files are missing or empty" : "set \(names)"
            }
        }
        self.keys = keys
        self.missing = missing
        var initial = State()
        for (provider, list) in keys { initial.keys[provider] = Array(repeating: KeyState(), count: list.count) }
        state = Mutex(initial)
    }

    /// Whether `provider` may be tried now, and if so, with which key. Nil when its circuit is open, or
    /// every key is resting or out. A provider without keys (the mock) gets a lease with no key. With
    /// `circuit: false` (the last model a request can go to) an open circuit does not stop the attempt:
    /// skipping a provider helps only when there is another to go to.
    func acquire(_ provider: String, now: Date = Date(), circuit: Bool = true) -> Lease? {
        let list = keys[provider] ?? []
        return state.withLock { s -> Lease? in
            var breaker = s.breakers[provider] ?? Breaker()
            if circuit, let until = breaker.openUntil {
                guard now >= until, !breaker.probing else { return nil }
                breaker.probing = true
                s.breakers[provider] = breaker
            }
            guard !list.isEmpty else { return Lease(provider: provider, index: nil, key: nil) }
            var states = s.keys[provider] ?? []
            let usable = states.indices.filter { states[$0].disabled == nil && states[$0].restUntil <= now }
            guard let fewest = usable.map({ states[$0].outstanding }).min() else {
                if breaker.probing { s.breakers[provider]?.probing = false }
                return nil
            }
            let tied = usable.filter { states[$0].outstanding == fewest }
            let after = s.lastPick[provider] ?? -1
            let best = tied.first { $0 > after } ?? tied[0]
            s.lastPick[provider] = best
            states[best].outstanding += 1
            s.keys[provider] = states
            return Lease(provider: provider, index: best, key: list[best])
        }
    }

    /// Keys of the provider's pool that would take a request now (not resting, not out).
    func usableKeyCount(_ provider: String, now: Date = Date()) -> Int {
        state.withLock { s in
            (s.keys[provider] ?? []).filter { $0.disabled == nil && $0.restUntil <= now }.count
        }
    }

    /// Hands a lease back with what the attempt met: an upstream status (nil when it never answered),
    /// its headers (for 429 resets), and whether it counts as a provider failure for the breaker.
    func finish(_ lease: Lease, status: Int?, headers: [(String, String)], failed: Bool, now: Date = Date()) {
        state.withLock { s in
            if let i = lease.index, var states = s.keys[lease.provider], states.indices.contains(i) {
                states[i].outstanding = max(0, states[i].outstanding - 1)
                // Only a pool sets keys aside, and never its last usable one: a provider's only key
                // is retried after the upstream's reset (the forward stage waits for it) and keeps
                // answering what the provider says.
                let others = states.indices.filter { $0 != i && states[$0].disabled == nil }
                if status == 429 && !others.isEmpty {
                    states[i].restUntil = now.addingTimeInterval(Self.resetSeconds(headers) ?? 1)
                } else if status == 401 && !others.isEmpty {
                    states[i].disabled = "the provider refused the key (401)"
                } else if status == 403 && !others.isEmpty {
                    // A 403 can depend on the request (a beta header, a model): the key rests, not out.
                    states[i].restUntil = now.addingTimeInterval(60)
                }
                s.keys[lease.provider] = states
            }
            var breaker = s.breakers[lease.provider] ?? Breaker()
            breaker.probing = false
            if failed {
                breaker.failures += 1
                if breaker.failures >= Self.breakerThreshold || breaker.openUntil != nil {
                    breaker.openUntil = now.addingTimeInterval(Self.cooldown)
                }
            } else if status != 429 {
                breaker = Breaker()
            }
            s.breakers[lease.provider] = breaker
        }
    }

    /// Each provider's circuit and each key's state, for `/readyz` and `/metrics`.
    func snapshot(now: Date = Date()) -> [(provider: String, circuit: Circuit, keys: [(id: String, state: String)])] {
        state.withLock { s in
            keys.keys.sorted().map { provider in
                let breaker = s.breakers[provider] ?? Breaker()
                let circuit: Circuit =
                    breaker.openUntil == nil ? .closed : (now >= breaker.openUntil! ? .halfOpen : .open)
                let states = s.keys[provider] ?? []
                let list = (keys[provider] ?? []).enumerated().map { i, key in
                    let st = states.indices.contains(i) ? states[i] : KeyState()
                    let label = st.disabled != nil ? "disabled" : (st.restUntil > now ? "resting" : "ok")
                    return (key.id, label)
                }
                return (provider, circuit, list)
            }
        }
    }

    /// The snapshot as `/readyz` shows it: each provider's circuit and its keys' states.
    static func json(_ snapshot: [(provider: String, circuit: Circuit, keys: [(id: String, state: String)])])
        -> JSONValue
    {
        .object(
            snapshot.map { p in
                (
                    p.provider,
                    .object([
                        ("circuit", .string(p.circuit.rawValue)),
                        ("keys", .object(p.keys.map { ($0.id, .string($0.state)) })),
                    ])
                )
            })
    }

    /// Seconds until a rate limit resets: `Retry-After` (seconds), or the soonest of OpenAI-style
    /// `x-ratelimit-reset-requests` / `-tokens` (`1s`, `6m0s`, `20ms`), capped at an hour.
    static func resetSeconds(_ headers: [(String, String)]) -> TimeInterval? {
        var best: TimeInterval?
        for (name, value) in headers {
            let lower = name.lowercased()
            var seconds: TimeInterval?
            if lower == "retry-after" {
                seconds = TimeInterval(value.trimmingCharacters(in: .whitespaces))
            } else if lower == "x-ratelimit-reset-requests" || lower == "x-ratelimit-reset-tokens" {
                seconds = duration(value)
            }
            if let s = seconds, s >= 0 { best = min(best ?? s, s) }
        }
        return best.map { min($0, 3_600) }
    }

    /// A Go-style duration (`1h2m3.5s`, `20ms`); nil if it is not one.
    static func duration(_ text: String) -> TimeInterval? {
        var total: TimeInterval = 0
        var number = ""
        let chars = Array(text.trimmingCharacters(in: .whitespaces))
        guard !chars.isEmpty else { return nil }
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isNumber || c == "." {
                number.append(c)
                i += 1
                continue
            }
            guard let value = Double(number) else { return nil }
            number = ""
            if c == "m", i + 1 < chars.count, chars[i + 1] == "s" {
                total += value / 1_000
                i += 2
                continue
            }
            switch c {
            case "h": total += value * 3_600
            case "m": total += value * 60
            case "s": total += value
            default: return nil
            }
            i += 1
        }
        return number.isEmpty ? total : nil
    }
}
