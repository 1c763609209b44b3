import AsyncHTTPClient
import Foundation
import HTTPTypes
import Logging
import Metering
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// One HTTP client per provider, configured with that provider's timeouts, and the provider keys.
///
/// Clients are created here rather than using `HTTPClient.shared`, which follows redirects and
/// decompresses bodies: a metering proxy needs neither.
public final class UpstreamClients: UpstreamTransport {
    private let clients: [String: HTTPClient]
    /// Each provider's request for each endpoint, built once: parsing the URL on every request cost
    /// more than the rest of building it. Keyed by provider name, then endpoint.
    private let templates: [String: [APIEndpoint: HTTPClient.Request]]
    private let credentials: [String: String]
    private let missingCredentials: [String: String]

    public init(
        config: GatewayConfig,
        eventLoopGroup: any EventLoopGroup,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        var clients: [String: HTTPClient] = [:]
        var credentials: [String: String] = [:]
        var missing: [String: String] = [:]
        var templates: [String: [APIEndpoint: HTTPClient.Request]] = [:]
        for provider in config.providers.values {
            if provider.kind == .mock { continue }  // answered in-process by another transport
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(
                    connect: .milliseconds(Int64(provider.timeouts.connectMilliseconds)),
                    read: .milliseconds(Int64(provider.timeouts.idleReadMilliseconds))),
                decompression: .disabled)
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1024
            configuration.connectionPool.idleTimeout = .seconds(60)
            clients[provider.name] = HTTPClient(
                eventLoopGroupProvider: .shared(eventLoopGroup), configuration: configuration)
            // An endpoint whose URL does not parse has no template; its requests fail as unreachable.
            templates[provider.name] = Dictionary(
                uniqueKeysWithValues: APIEndpoint.allCases.compactMap { endpoint in
                    (try? HTTPClient.Request(url: provider.baseURL + endpoint.upstreamPath, method: .POST))
                        .map { (endpoint, $0) }
                })
            switch Self.readKey(provider, environment: environment) {
            case .success(let key): credentials[provider.name] = key
            case .failure(let reason): missing[provider.name] = reason.detail
            }
        }
        self.clients = clients
        self.templates = templates
        self.credentials = credentials
        self.missingCredentials = missing
    }

    struct KeyProblem: Error { var detail: String }

    static func readKey(_ provider: ProviderConfig, environment: [String: String]) -> Result<String, KeyProblem> {
        if let name = provider.apiKeyEnv, let value = environment[name], !value.isEmpty {
            return .success(value.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let file = provider.apiKeyFile {
            if let value = try? String(contentsOfFile: file, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty
            {
                return .success(value)
            }
            return .failure(KeyProblem(detail: "the key file \(file) is missing or empty"))
        }
        return .failure(KeyProblem(detail: "set \(provider.apiKeyEnv ?? "its key variable") in the environment"))
    }

    /// Providers whose key is missing, with what to do about it (logged at start, never the keys).
    public var unconfiguredProviders: [String: String] { missingCredentials }

    /// Sends one request upstream and returns as soon as the response headers arrive.
    public func send(_ upstream: UpstreamRequest, cancellation: UpstreamCancellation) async throws(UpstreamFailure)
        -> UpstreamResponse
    {
        let provider = upstream.provider
        let endpoint = upstream.endpoint
        let body = upstream.body
        let clientHeaders = upstream.clientHeaders
        let requestID = upstream.requestID
        guard let client = clients[provider.name] else {
            throw .notConfigured(provider: provider.name, detail: "no HTTP client for this provider")
        }
        guard let key = credentials[provider.name] else {
            throw .notConfigured(provider: provider.name, detail: missingCredentials[provider.name] ?? "no key")
        }
        var headers = HTTPHeaders()
        for (name, value) in HeaderPolicy.upstreamRequestHeaders(from: clientHeaders) {
            headers.add(name: name, value: value)
        }
        switch provider.kind {
        case .anthropic:
            headers.replaceOrAdd(name: "x-api-key", value: key)
            if !headers.contains(name: "anthropic-version") {
                headers.add(name: "anthropic-version", value: "2023-06-01")
            }
        default:
            headers.replaceOrAdd(name: "authorization", value: "Bearer \(key)")
        }
        headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
        guard var request = templates[provider.name]?[endpoint] else {
            throw .unreachable(provider: provider.name, detail: "invalid upstream URL")
        }
        request.headers = headers
        request.body = .bytes(body)

        // The delegate runs on the client connection's loop, so the relay writes each chunk to the client
        // as it is read. The upstream connection is on that loop too when the pool has or can make one
        // there (always with one thread); requiring it (`.delegateAndChannel`) left requests waiting for
        // the first-byte timeout now and then.
        let eventLoop = upstream.eventLoop ?? client.eventLoopGroup.any()
        let delegate = StreamingResponseDelegate(eventLoop: eventLoop)
        let task = client.execute(request: request, delegate: delegate, eventLoop: .delegate(on: eventLoop))
        delegate.attach(task: task)
        // A client that leaves while the upstream thinks stops the upstream request at once.
        cancellation.onCancel {
            delegate.failHead(CancellationError())
            task.cancel()
        }
        // `firstByte` bounds the wait for the response head; the body is bounded by the idle read timeout.
        let timer = eventLoop.scheduleTask(in: .milliseconds(Int64(provider.timeouts.firstByteMilliseconds))) {
            // Only if the head is still missing: a head that arrived as the timer fired is a live stream.
            if delegate.failHead(HTTPClientError.deadlineExceeded) { task.cancel() }
        }
        let head: HTTPResponseHead
        do {
            head = try await delegate.headFuture.get()
            timer.cancel()
        } catch {
            timer.cancel()
            throw Self.classify(error, provider: provider.name)
        }
        var forwarded: [(String, String)] = []
        var contentLength: Int?
        for header in head.headers {
            let lower = header.name.lowercased()
            if lower == "content-length" { contentLength = Int(header.value) }
            if lower == "x-request-id" { forwarded.append(("x-upstream-request-id", header.value)) }
            if HeaderPolicy.isForwardableResponseHeader(header.name) {
                forwarded.append((header.name, header.value))
            }
        }
        return UpstreamResponse(
            status: Int(head.status.code), headers: forwarded, contentLength: contentLength,
            body: UpstreamBodyHandle(delegate.body), secrets: [key])
    }

    /// Whether a body that broke off did so because the upstream fell silent (the idle read timeout).
    static func isTimeout(_ error: any Error) -> Bool {
        guard let e = error as? HTTPClientError else { return false }
        return e == .readTimeout || e == .deadlineExceeded
    }

    static func classify(_ error: any Error, provider: String) -> UpstreamFailure {
        if let e = error as? HTTPClientError {
            if e == .deadlineExceeded || e == .connectTimeout || e == .readTimeout {
                return .timedOut(provider: provider)
            }
        }
        if let e = error as? ChannelError, case .connectTimeout = e { return .timedOut(provider: provider) }
        return .unreachable(provider: provider, detail: String(describing: error))
    }

    public func shutdown() async {
        for client in clients.values {
            try? await client.shutdown()
        }
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
