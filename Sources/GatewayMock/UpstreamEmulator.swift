import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metering
import NIOCore
import Synchronization

/// The mock provider served over real HTTP: an upstream that speaks OpenAI and Anthropic JSON and SSE
/// and injects faults on request (`x-mock-*` headers, see ``MockDirectives``).
///
/// Tests point a provider of kind `openai` or `anthropic` at it to exercise the real forwarding path;
/// `gateway emulator` runs it standalone for benchmarks. It remembers the headers of each request so
/// tests can check what crossed the gateway.
public final class UpstreamEmulator: Sendable {
    public struct SeenRequest: Sendable {
        public var path: String
        public var headers: HTTPFields
        public var body: [UInt8]
    }

    private let seen = Mutex<[SeenRequest]>([])
    private let gates = Mutex<[String: CheckedContinuation<Void, Never>]>([:])
    private let opened = Mutex<Set<String>>([])
    let mock: MockProvider
    let record: Bool

    public init(settings: MockSettings = .init(), record: Bool = true) {
        self.mock = MockProvider(settings: settings)
        self.record = record
    }

    public var requests: [SeenRequest] { seen.withLock { $0 } }

    /// Lets a stream held with `x-mock-hold: NAME` continue past its first chunk.
    public func release(_ name: String) {
        let waiter = gates.withLock { $0.removeValue(forKey: name) }
        if let waiter {
            waiter.resume()
        } else {
            opened.withLock { _ = $0.insert(name) }
        }
    }

    private func wait(_ name: String) async {
        if opened.withLock({ $0.remove(name) != nil }) { return }
        await withCheckedContinuation { continuation in
            let alreadyOpen = opened.withLock { $0.remove(name) != nil }
            if alreadyOpen {
                continuation.resume()
            } else {
                gates.withLock { $0[name] = continuation }
            }
        }
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        for endpoint in APIEndpoint.allCases {
            router.post(RouterPath(endpoint.rawValue)) { request, _ in
                try await self.respond(endpoint, request: request)
            }
        }
        return router
    }

    func respond(_ endpoint: APIEndpoint, request: Request) async throws -> Response {
        let body = Array(try await request.body.collect(upTo: 64 << 20).readableBytesView)
        if record {
            seen.withLock { $0.append(SeenRequest(path: request.uri.path, headers: request.headers, body: body)) }
        }
        let parsed: ParsedRequest
        do {
            parsed = try RequestParser.parse(endpoint: endpoint, body: body)
        } catch {
            let text = ErrorBody.render(
                dialect: endpoint.dialect, status: 400, message: error.message, param: error.param)
            return Response(
                status: .badRequest, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        var shaped = mock.reply(to: parsed, directives: MockDirectives(headers: request.headers))
        // Like some providers, echo the credential in an error, so tests can check the gateway hides it.
        if shaped.status >= 400, HTTPField.Name("x-mock-echo-key").flatMap({ request.headers[$0] }) != nil {
            let key =
                request.headers[.authorization] ?? HTTPField.Name("x-api-key").flatMap { request.headers[$0] } ?? ""
            shaped.chunks = [
                ByteBuffer(
                    string: ErrorBody.render(
                        dialect: endpoint.dialect, status: shaped.status, message: "Incorrect API key provided: \(key)")
                )
            ]
        }
        if shaped.stallBeforeHeadersMilliseconds > 0 {
            try await Task.sleep(for: .milliseconds(shaped.stallBeforeHeadersMilliseconds))
        }
        let reply = shaped
        let hold = HTTPField.Name("x-mock-hold").flatMap { request.headers[$0] }
        var headers: HTTPFields = [
            .contentType: reply.contentType, HTTPField.Name("x-request-id")!: "upstream-\(parsed.model)",
        ]
        if reply.isStream { headers[.cacheControl] = "no-cache" }
        let length = reply.isStream || reply.cutAfterChunks != nil ? nil : reply.contentLength
        return Response(
            status: .init(code: reply.status), headers: headers,
            body: ResponseBody(contentLength: length) { writer in
                var written = 0
                try await reply.writeBody { chunk in
                    try await writer.write(chunk)
                    written += 1
                    if written == 1, let hold { await self.wait(hold) }
                }
                try await writer.finish(nil)
            })
    }
}
