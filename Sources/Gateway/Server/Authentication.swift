import Hummingbird
import Metering

/// The one place a tenant's key is checked: every route of the tenant API (`/v1/...`) sits behind it.
///
/// A missing, unknown or revoked key gets 401, a suspended tenant 403, each in the format of the API the
/// path belongs to. The refusal of a known key is recorded (`rejected`, zero cost) like any other.
struct TenantAuthentication: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let authenticator: Authenticator
    let recordRefusal: @Sendable (AuthenticatedKey, Request, GatewayRequestContext, GatewayError) async -> Void

    func handle(
        _ request: Request, context: GatewayRequestContext,
        next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        let key = try await authenticator.identify(request.headers)
        do {
            try Authenticator.checkActive(key)
        } catch {
            await recordRefusal(key, request, context, error)
            throw error
        }
        var context = context
        context.caller = key
        return try await next(request, context)
    }
}

/// The one place the operator's admin token is checked: every admin route sits behind it.
struct AdminAuthentication: RouterMiddleware {
    typealias Context = GatewayRequestContext

    let authenticator: AdminAuthenticator

    func handle(
        _ request: Request, context: GatewayRequestContext,
        next: (Request, GatewayRequestContext) async throws -> Response
    ) async throws -> Response {
        try authenticator.authorize(request.headers)
        return try await next(request, context)
    }
}
