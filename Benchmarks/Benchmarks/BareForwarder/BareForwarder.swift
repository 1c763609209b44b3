import AsyncHTTPClient
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

/// The floor under the gateway's proxy benchmark: the same server and client stack (Hummingbird 2 and
/// AsyncHTTPClient on one event loop that is also the Swift concurrency executor, set up as the gateway
/// sets them up), doing nothing but forwarding. No authentication, parsing, token counting, admission,
/// metering or ledger. `Benchmarks/proxy-wrk.sh` runs it beside the gateway, so the difference between
/// the two is what the gateway's own work costs, and this one's figures are what the stack alone allows.
///
///   BareForwarder PORT UPSTREAM_BASE_URL    (e.g. 18083 http://127.0.0.1:19090)
@main
struct BareForwarder {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 3, let port = Int(arguments[1]) else {
            print("usage: BareForwarder PORT UPSTREAM_BASE_URL")
            return
        }
        let upstream = arguments[2]
        // As the gateway's `serve --threads 1`: one event loop, and Swift concurrency runs on it.
        NIOSingletons.groupLoopCountSuggestion = 1
        precondition(NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor())
        let group = MultiThreadedEventLoopGroup.singleton

        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(60)),
            decompression: .disabled)
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 1024
        configuration.connectionPool.idleTimeout = .seconds(60)
        let client = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration)

        let router = Router()
        router.post("/v1/chat/completions") { request, _ -> Response in
            var forwarded = HTTPClientRequest(url: upstream + "/v1/chat/completions")
            forwarded.method = .POST
            forwarded.headers.add(name: "content-type", value: "application/json")
            forwarded.headers.add(name: "authorization", value: "Bearer bare-forwarder")
            forwarded.body = .bytes(try await request.body.collect(upTo: 1 << 20))
            let answer = try await client.execute(forwarded, timeout: .seconds(60))
            var headers = HTTPFields()
            if let type = answer.headers.first(name: "content-type") { headers[.contentType] = type }
            return Response(
                status: .init(code: Int(answer.status.code)), headers: headers,
                body: ResponseBody(asyncSequence: answer.body))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil, backlog: 1024),
            eventLoopGroupProvider: .shared(group))
        try await app.runService()
        try await client.shutdown()
    }
}
