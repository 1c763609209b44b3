import Hummingbird
import Metering

/// The proxied endpoints (`POST /v1/chat/completions` and the others of ``APIEndpoint``), answered by
/// the same middleware and handler as their routes in the router, without the router's walk of its
/// trie (about 14k instructions a request). Any other request, or another spelling of these paths
/// (a trailing slash), goes to the router as before.
struct ProxyFastPath: HTTPResponder {
    let router: RouterResponder<GatewayRequestContext>
    let authentication: TenantAuthentication
    let handle: @Sendable (APIEndpoint, Request, TenantRequestContext) async throws -> Response

    func respond(to request: Request, context: GatewayRequestContext) async throws -> Response {
        guard request.method == .post, let endpoint = APIEndpoint(rawValue: request.uri.path) else {
            return try await router.respond(to: request, context: context)
        }
        do {
            return try await authentication.handle(request, context: context) { request, context in
                try await handle(endpoint, request, try TenantRequestContext(context: context))
            }
        } catch let error as any HTTPResponseError {
            // As the router answers an error its route throws.
            return try error.response(from: request, context: context)
        }
    }
}
