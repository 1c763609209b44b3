import HTTPTypes
import Hummingbird
import Logging
import Metering
import NIOCore

/// The request path, in order. Every proxied request runs these stages and no others:
///
/// | stage        | what it does                                                     | where                |
/// |--------------|------------------------------------------------------------------|----------------------|
/// | authenticate | virtual key → tenant, or 401                                     | ``Authenticator``    |
/// | read body    | bounded read, 413 above the configured limit                     | here                 |
/// | parse        | model, stream flag, max output                                   | `RequestParser`      |
/// | route        | public model → provider and upstream model                       | `GatewayConfig`      |
/// | estimate     | exact prompt tokens + max output, priced     (metering issue)    | Metering             |
/// | admit        | atomic reservation against quota and budget  (policies issue)    | Metering + store     |
/// | forward      | send upstream; headers by ``HeaderPolicy``; timeouts → 502/504   | ``UpstreamClients``  |
/// | relay        | stream the response chunk by chunk, never buffering a stream     | ``ResponseRelay``    |
/// | meter/settle/record | usage, cost and a durable record before the last byte (metering issue) | |
///
/// Stages that are not built yet are listed so the order stays visible; each is added here, in place.
public struct RequestPipeline: Sendable {
    let config: GatewayConfig
    let authenticator: Authenticator
    let upstreams: UpstreamClients
    let logger: Logger

    public init(config: GatewayConfig, keys: KeyDirectory, upstreams: UpstreamClients, logger: Logger) {
        self.config = config
        self.authenticator = Authenticator(directory: keys)
        self.upstreams = upstreams
        self.logger = logger
    }

    public func handle(
        _ endpoint: APIEndpoint, request: Request, context: GatewayRequestContext
    ) async -> Response {
        do {
            return try await run(endpoint, request: request, context: context)
        } catch {
            return error.response(dialect: endpoint.dialect, requestID: context.requestID)
        }
    }

    private func run(
        _ endpoint: APIEndpoint, request: Request, context: GatewayRequestContext
    ) async throws(GatewayError) -> Response {
        // authenticate
        _ = try authenticator.authenticate(request.headers)

        // read body
        let body = try await readBody(request)

        // parse
        let parsed: ParsedRequest
        do {
            parsed = try RequestParser.parse(endpoint: endpoint, body: body)
        } catch {
            throw GatewayError.badRequest(error)
        }

        // route
        guard let (route, provider) = config.route(forModel: parsed.model) else {
            throw GatewayError.unknownModel(parsed.model)
        }
        if endpoint == .messages && provider.kind == .openai {
            throw GatewayError(
                status: 400,
                message: "The model '\(parsed.model)' is served over the OpenAI API; call /v1/chat/completions.",
                openAIType: "invalid_request_error", param: "model")
        }
        if endpoint != .messages && provider.kind == .anthropic {
            throw GatewayError(
                status: 400,
                message: "The model '\(parsed.model)' is served over the Anthropic Messages API; call /v1/messages.",
                openAIType: "invalid_request_error", param: "model")
        }

        // forward
        let upstream: UpstreamResponse
        if let mock = upstreams.mocks[provider.name] {
            upstream = await MockForwarder.send(mock: mock, request: parsed, headers: request.headers)
        } else {
            do {
                upstream = try await upstreams.send(
                    provider: provider, endpoint: endpoint, body: parsed.body(withModel: route.upstreamModel),
                    clientHeaders: request.headers, requestID: context.requestID)
            } catch {
                logger.warning(
                    "upstream failed", metadata: ["provider": "\(provider.name)", "request_id": "\(context.requestID)"])
                throw GatewayError.upstream(error)
            }
        }

        // relay
        return try await ResponseRelay.relay(
            upstream, provider: provider.name, dialect: endpoint.dialect, requestID: context.requestID)
    }

    private func readBody(_ request: Request) async throws(GatewayError) -> [UInt8] {
        let limit = config.server.maxRequestBodyBytes
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw GatewayError.tooLarge(limit: limit)
        }
        do {
            let buffer = try await request.body.collect(upTo: limit)
            return Array(buffer.readableBytesView)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw GatewayError.tooLarge(limit: limit)
        } catch {
            throw GatewayError(status: 400, message: "The request body could not be read.")
        }
    }

    /// `GET /v1/models`: the models this key may use.
    public func listModels(request: Request, context: GatewayRequestContext) -> Response {
        do {
            _ = try authenticator.authenticate(request.headers)
        } catch {
            return error.response(dialect: .openai, requestID: context.requestID)
        }
        let data: [JSONValue] = config.models.map { model in
            .object([
                ("id", .string(model.name)), ("object", "model"), ("created", 0), ("owned_by", .string(model.provider)),
            ])
        }
        let body = JSONWriter.serialize(.object([("object", "list"), ("data", .array(data))]))
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.requestID] = context.requestID
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

/// The in-process mock provider seen through the same `UpstreamResponse` shape as a real upstream.
enum MockForwarder {
    static func send(mock: MockProvider, request: ParsedRequest, headers: HTTPFields) async -> UpstreamResponse {
        let reply = mock.reply(to: request, directives: MockDirectives(headers: headers))
        if reply.stallBeforeHeadersMilliseconds > 0 {
            try? await Task.sleep(for: .milliseconds(reply.stallBeforeHeadersMilliseconds))
        }
        var headers: [(String, String)] = [("content-type", reply.contentType)]
        if reply.isStream { headers.append(("cache-control", "no-cache")) }
        return UpstreamResponse(
            status: reply.status, headers: headers, contentLength: reply.isStream ? nil : reply.contentLength,
            body: .mock(reply))
    }
}
