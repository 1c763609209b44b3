import Foundation
import HTTPTypes
import Logging
import Metering
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The proxied path's HTTP client: a pool of keep-alive connections per provider. The key for each
/// request comes with it (``ProviderHealth`` owns the keys).
///
/// It is written on NIO rather than AsyncHTTPClient because the relay's cost per request is mostly the
/// client's (see `Benchmarks/NOTES.md`). It follows no redirects and never decompresses: the upstream
/// is asked for `identity`, and the meter reads plain bytes.
public final class UpstreamClients: UpstreamTransport {
    private let pools: [String: UpstreamConnectionPool]
    /// Why a provider has no pool (a base URL or TLS setting that does not load).
    private let broken: [String: String]
    private let eventLoopGroup: any EventLoopGroup

    public init(config: GatewayConfig, eventLoopGroup: any EventLoopGroup) {
        var pools: [String: UpstreamConnectionPool] = [:]
        var broken: [String: String] = [:]
        for provider in config.providers.values {
            if provider.kind == .mock { continue }  // answered in-process by another transport
            if let target = UpstreamTarget(baseURL: provider.baseURL) {
                do {
                    pools[provider.name] = try UpstreamConnectionPool(
                        target: target, connectTimeout: .milliseconds(Int64(provider.timeouts.connectMilliseconds)),
                        caFile: provider.tlsCAFile)
                } catch {
                    broken[provider.name] = "its TLS settings do not load: \(error)"
                }
            } else {
                broken[provider.name] = "invalid upstream URL"
            }
        }
        self.pools = pools
        self.broken = broken
        self.eventLoopGroup = eventLoopGroup
    }

    /// Sends one request upstream and returns as soon as the response headers arrive.
    public func send(_ upstream: UpstreamRequest, cancellation: UpstreamCancellation) async throws(UpstreamFailure)
        -> UpstreamResponse
    {
        let provider = upstream.provider
        let endpoint = upstream.endpoint
        let body = upstream.body
        let clientHeaders = upstream.clientHeaders
        let requestID = upstream.requestID
        guard let pool = pools[provider.name] else {
            throw .unreachable(provider: provider.name, detail: broken[provider.name] ?? "no client for this provider")
        }
        guard let key = upstream.apiKey else {
            throw .notConfigured(provider: provider.name, detail: "no key for this request")
        }
        // Built as a list and wrapped once: each of HTTPHeaders' own adds walks the name to check it is
        // ASCII (UpstreamRequestWriter refuses a name that is not a token anyway). Every name here is
        // lower-case (HeaderPolicy gives canonical names), so replacing one compares exactly.
        var fields: [(String, String)] = [("host", pool.target.hostHeader)]
        fields.reserveCapacity(clientHeaders.count + 8)
        fields += HeaderPolicy.upstreamRequestHeaders(from: clientHeaders)
        func set(_ name: String, _ value: String) {
            fields.removeAll { $0.0 == name }
            fields.append((name, value))
        }
        switch provider.kind {
        case .anthropic:
            set("x-api-key", key)
            if !fields.contains(where: { $0.0 == "anthropic-version" }) {
                fields.append(("anthropic-version", "2023-06-01"))
            }
        default:
            set("authorization", "Bearer \(key)")
        }
        set("accept-encoding", "identity")
        set("content-type", "application/json")
        set("x-request-id", requestID)
        fields.append(("content-length", String(body.count)))
        let headers = HTTPHeaders(fields)
        let head = HTTPRequestHead(
            version: .http1_1, method: .POST, uri: pool.target.pathPrefix + endpoint.upstreamPath, headers: headers)

        // The upstream connection is on the client connection's loop, so the relay writes each chunk to
        // the client as it is read, with no thread or task switch.
        let eventLoop = upstream.eventLoop ?? eventLoopGroup.any()
        let exchange = UpstreamExchange(
            eventLoop: eventLoop, firstByteTimeout: .milliseconds(Int64(provider.timeouts.firstByteMilliseconds)))
        // A client that leaves while the upstream thinks stops the upstream request at once.
        cancellation.onCancel { exchange.cancel() }
        pool.run(
            exchange, head: head, body: ByteBuffer(bytes: body),
            idleTimeout: .milliseconds(Int64(provider.timeouts.idleReadMilliseconds)))
        let responseHead: HTTPResponseHead
        do {
            responseHead = try await exchange.head.futureResult.get()
        } catch {
            throw Self.classify(error, provider: provider.name)
        }
        var forwarded: [(String, String)] = []
        var contentLength: Int?
        let hasNoBody = responseHead.status == .noContent || responseHead.status == .notModified
        for header in responseHead.headers {
            let lower = header.name.lowercased()
            // A 204 or 304 has no body whatever length it names.
            if lower == "content-length", !hasNoBody { contentLength = Int(header.value) }
            if lower == "x-request-id" { forwarded.append(("x-upstream-request-id", header.value)) }
            if HeaderPolicy.isForwardableResponseHeader(header.name) {
                forwarded.append((header.name, header.value))
            }
        }
        return UpstreamResponse(
            status: Int(responseHead.status.code), headers: forwarded, contentLength: contentLength,
            body: UpstreamBodyHandle(exchange.body), secrets: [key])
    }

    /// Whether a body that broke off did so because the upstream fell silent (the idle read timeout).
    static func isTimeout(_ error: any Error) -> Bool {
        guard let e = error as? UpstreamConnectionError else { return false }
        return e == .idleReadTimeout || e == .firstByteTimeout
    }

    static func classify(_ error: any Error, provider: String) -> UpstreamFailure {
        if isTimeout(error) { return .timedOut(provider: provider) }
        if let e = error as? ChannelError, case .connectTimeout = e { return .timedOut(provider: provider) }
        return .unreachable(provider: provider, detail: String(describing: error))
    }

    /// Closes the idle upstream connections; exchanges still running end with their own connections.
    public func shutdown() async {
        for pool in pools.values { pool.closeIdle() }
    }
}

/// Shuts the upstream clients down after the server has drained (last in the service group).
public struct UpstreamClientsService: Service {
    let clients: UpstreamClients

    public init(clients: UpstreamClients) { self.clients = clients }

    public func run() async throws {
        try? await gracefulShutdown()
        await clients.shutdown()
    }
}
