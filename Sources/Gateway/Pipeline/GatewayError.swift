import HTTPTypes
import Hummingbird
import Metering

/// An error the gateway answers itself, rendered in whichever API format the client speaks.
public struct GatewayError: Error, Sendable {
    public var statusCode: Int
    public var message: String
    public var openAIType: String?
    public var code: String?
    public var param: String?
    public var extraHeaders: [(String, String)] = []
    /// Whether the request's billing record was already written (failures after forwarding); otherwise
    /// the pipeline records the request as rejected.
    public var isRecorded = false

    public init(status: Int, message: String, openAIType: String? = nil, code: String? = nil, param: String? = nil) {
        self.statusCode = status
        self.message = message
        self.openAIType = openAIType
        self.code = code
        self.param = param
    }

    /// The same error, marked as having its billing record.
    public func recorded() -> GatewayError {
        var copy = self
        copy.isRecorded = true
        return copy
    }

    public func response(dialect: APIDialect, requestID: String) -> Response {
        let body = ErrorBody.render(
            dialect: dialect, status: statusCode, message: message, openAIType: openAIType, code: code, param: param)
        var headers = HTTPFields()
        for (name, value) in extraHeaders {
            if let n = HTTPField.Name(name) { headers[n] = value }
        }
        return JSONResponse.text(statusCode, body, requestID: requestID, extraHeaders: headers)
    }

    // MARK: The errors the pipeline raises

    static let missingKey = GatewayError(
        status: 401,
        message: "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'.",
        code: "invalid_api_key")
    static let invalidKey = GatewayError(
        status: 401, message: "Incorrect API key provided, or the key has been revoked.", code: "invalid_api_key")

    static let tenantSuspended = GatewayError(
        status: 403, message: "This account is suspended; contact your administrator.",
        openAIType: "permission_error", code: "tenant_suspended")

    /// The body is not read any further, so the connection closes after the answer.
    static func tooLarge(limit: Int) -> GatewayError {
        var error = GatewayError(
            status: 413, message: "The request body is larger than this gateway accepts (\(limit) bytes).",
            openAIType: "invalid_request_error", code: "request_too_large")
        error.extraHeaders.append(("connection", "close"))
        return error
    }

    static func maxOutputTooLarge(asked: Int, cap: Int, model: String, param: String?) -> GatewayError {
        GatewayError(
            status: 400,
            message:
                "\(param ?? "max_tokens") is \(asked), but the model '\(model)' allows at most \(cap) output tokens.",
            openAIType: "invalid_request_error", code: "max_tokens_too_large", param: param ?? "max_tokens")
    }

    /// The provider refused the operator's key: the tenant's key is fine, the gateway's setup is not.
    static func providerAuthFailed(provider: String) -> GatewayError {
        GatewayError(
            status: 502,
            message:
                "The upstream provider '\(provider)' refused the gateway's credentials; the operator has been told.",
            openAIType: "server_error", code: "provider_auth_failed")
    }

    /// The client went away; nobody reads this answer, but the handler must return something.
    static let clientGone = GatewayError(
        status: SettlementOwner.clientClosedRequest, message: "The client closed the connection.",
        openAIType: "invalid_request_error", code: "client_disconnected")

    static func badRequest(_ e: RequestError) -> GatewayError {
        GatewayError(status: 400, message: e.message, openAIType: "invalid_request_error", param: e.param)
    }

    static func unknownModel(_ model: String) -> GatewayError {
        GatewayError(
            status: 404,
            message: "The model '\(JSONError.excerpt(model))' does not exist or you do not have access to it.",
            openAIType: "invalid_request_error", code: "model_not_found", param: "model")
    }

    static func notFound(path: String) -> GatewayError {
        GatewayError(
            status: 404, message: "Unknown request URL: \(path). Please check the URL for typos.",
            openAIType: "invalid_request_error", code: "unknown_url")
    }

    static func upstream(_ failure: UpstreamFailure) -> GatewayError {
        switch failure {
        case .unreachable(let provider, _):
            return GatewayError(
                status: 502, message: "The upstream provider '\(provider)' could not be reached.",
                openAIType: "server_error", code: "upstream_unreachable")
        case .timedOut(let provider):
            return GatewayError(
                status: 504, message: "The upstream provider '\(provider)' did not answer in time.",
                openAIType: "server_error", code: "upstream_timeout")
        case .notConfigured(let provider, let detail):
            return GatewayError(
                status: 503, message: "The upstream provider '\(provider)' is not configured: \(detail).",
                openAIType: "server_error", code: "provider_not_configured")
        }
    }

    /// A request the admit stage refused: 429 with `Retry-After` and OpenAI's `x-ratelimit-*` headers
    /// for quota and rate limits, 403/400 for plan restrictions.
    static func rejected(_ r: Rejection) -> GatewayError {
        let type: String
        switch r.kind {
        case .insufficientQuota: type = "insufficient_quota"
        case .rateLimited: type = "requests"
        case .modelNotAllowed: type = "invalid_request_error"
        case .maxOutputTooLarge, .noExchangeRate, .requestTooLarge: type = "invalid_request_error"
        }
        var error = GatewayError(
            status: r.httpStatus, message: r.message, openAIType: type, code: r.kind.rawValue,
            param: r.kind == .maxOutputTooLarge ? "max_tokens" : r.kind == .modelNotAllowed ? "model" : nil)
        if let seconds = r.retryAfterSeconds { error.extraHeaders.append(("retry-after", String(seconds))) }
        if let status = r.rateLimits {
            for field in rateLimitHeaders(status) { error.extraHeaders.append((field.name.canonicalName, field.value)) }
        }
        return error
    }

    static func rateLimitHeaders(_ s: RateLimitStatus) -> HTTPFields {
        var fields = HTTPFields()
        let pairs: [(String, Int?)] = [
            ("x-ratelimit-limit-requests", s.limitRequests), ("x-ratelimit-remaining-requests", s.remainingRequests),
            ("x-ratelimit-limit-tokens", s.limitTokens), ("x-ratelimit-remaining-tokens", s.remainingTokens),
        ]
        for (name, value) in pairs {
            if let value, let n = HTTPField.Name(name) { fields[n] = String(value) }
        }
        return fields
    }

    /// The store does not answer: nothing is admitted until it does.
    static let storeUnavailable = GatewayError(
        status: 503, message: "The gateway's store is unavailable, so requests cannot be metered; try again shortly.",
        openAIType: "api_error", code: "store_unavailable")

    /// The upstream answered but the answer's billing record could not be stored.
    static let recordNotStored = GatewayError(
        status: 503, message: "The gateway could not store this request's billing record; try again.",
        openAIType: "api_error", code: "ledger_unavailable")

    static func upstreamStatus(provider: String, status: Int, detail: String?) -> GatewayError {
        var message = "The upstream provider '\(provider)' failed with status \(status)."
        if let detail, !detail.isEmpty { message += " It said: \(detail)" }
        return GatewayError(status: 502, message: message, openAIType: "server_error", code: "upstream_error")
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("x-request-id")!
    static let xAPIKey = HTTPField.Name("x-api-key")!
}

/// Thrown from a middleware or a handler, the error renders itself: in the format of the API the path
/// belongs to, with the request's id, and without a body for HEAD.
extension GatewayError: HTTPResponseError {
    public var status: HTTPResponse.Status { .init(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let requestID = (context as? any RequestIdentified)?.requestID ?? RequestIDs.next()
        let response = response(dialect: APIDialect.of(path: request.uri.path), requestID: requestID)
        return request.method == .head ? response.createHeadResponse() : response
    }
}
