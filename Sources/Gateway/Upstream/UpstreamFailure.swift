/// Why the gateway could not get an answer from the upstream.
public enum UpstreamFailure: Error, Sendable, Equatable {
    /// Refused, reset, DNS or TLS failure: 502.
    case unreachable(provider: String, detail: String)
    /// No response headers within the provider's timeouts: 504.
    case timedOut(provider: String)
    /// The provider's key is not in the environment: 503.
    case notConfigured(provider: String, detail: String)
}
