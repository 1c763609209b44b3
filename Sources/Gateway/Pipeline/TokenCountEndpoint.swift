import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The gateway's own prompt count for a request body, without sending it anywhere.
///
/// - `POST /v1/messages/count_tokens`: Anthropic's shape, answers `{"input_tokens": N}`.
/// - `POST /v1/responses/input_tokens`: OpenAI's shape, answers
///   `{"object": "response.input_tokens", "input_tokens": N}`.
/// - `POST /v1/chat/completions/count_tokens`: the same for a chat completion body.
///
/// Every answer says whether the count is exact or an estimate in `x-gateway-token-count`.
struct TokenCountEndpoint: Sendable {
    enum Shape: Sendable {
        case anthropic
        case responses
        case chat

        var endpoint: APIEndpoint {
            switch self {
            case .anthropic: return .messages
            case .responses: return .responses
            case .chat: return .chatCompletions
            }
        }
    }

    let config: GatewayConfig
    let cache: TokenCountCache

    func handle(_ shape: Shape, request: Request, context: TenantRequestContext) async -> Response {
        let dialect = shape.endpoint.dialect
        do {
            let limit = config.server.maxRequestBodyBytes
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: limit)
            } catch {
                throw GatewayError.tooLarge(limit: limit)
            }
            let json: JSONValue
            do {
                json = try JSONReader.parse(Array(body.readableBytesView))
            } catch {
                throw GatewayError.badRequest(
                    RequestError("We could not parse the JSON body of your request (\(error.description))."))
            }
            guard let model = json["model"]?.stringValue else {
                throw GatewayError.badRequest(RequestError("You must provide a model parameter.", param: "model"))
            }
            guard let (route, _) = config.route(forModel: model) else { throw GatewayError.unknownModel(model) }
            let tokenizer: ModelTokenizer
            do {
                tokenizer = try ModelTokenizer.resolve(
                    upstreamModel: route.upstreamModel, configuredEncoding: route.tokenizer,
                    calibrationPerMille: route.calibrationPerMille)
            } catch {
                throw GatewayError(status: 500, message: "The tokenizer for '\(model)' could not be loaded.")
            }
            let count = PromptCounter(tokenizer: tokenizer, cache: cache).count(endpoint: shape.endpoint, json: json)
            let text: String
            switch shape {
            case .anthropic: text = #"{"input_tokens":\#(count.tokens)}"#
            case .responses, .chat:
                text = #"{"object":"response.input_tokens","input_tokens":\#(count.tokens)}"#
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.requestID] = context.requestID
            headers[HTTPField.Name("x-gateway-token-count")!] = count.isEstimate ? "estimate" : "exact"
            headers[HTTPField.Name("x-gateway-tokenizer")!] = tokenizer.encoding.name
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        } catch {
            let failure =
                error as? GatewayError ?? GatewayError(status: 500, message: "The request could not be counted.")
            return failure.response(dialect: dialect, requestID: context.requestID)
        }
    }
}
