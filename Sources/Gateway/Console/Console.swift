import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The web console at `/console/` (`docs/console.md`): HTML pages over the reports, signed in with the
/// admin token (every tenant) or a tenant's virtual key (that tenant only). Pages load nothing but the
/// stylesheet and icon served here, and run no script.
struct Console: Sendable {
    let store: any Store
    let policy: PolicyService
    let keys: KeyDirectory
    let admin: AdminAuthenticator
    let sessions: ConsoleSessions

    init(store: any Store, policy: PolicyService, keys: KeyDirectory, environment: [String: String]) {
        self.store = store
        self.policy = policy
        self.keys = keys
        self.admin = AdminAuthenticator(environment: environment)
        self.sessions = ConsoleSessions(adminToken: environment["GATEWAY_ADMIN_TOKEN"])
    }

    /// Who is looking, checked again on every request.
    enum Viewer: Sendable {
        case admin
        case tenant(Tenant, key: VirtualKey)
    }

    /// The pages about one tenant.
    enum Page: String, CaseIterable, Sendable {
        case spend, tokens, quota, whatif, records

        var title: String {
            switch self {
            case .spend: "Spend by day and model"
            case .tokens: "Tokens per request"
            case .quota: "Quota and budget"
            case .whatif: "Next price change"
            case .records: "Recent records"
            }
        }

        var label: String {
            switch self {
            case .spend: "Spend"
            case .tokens: "Tokens"
            case .quota: "Quota"
            case .whatif: "What-if"
            case .records: "Records"
            }
        }
    }

    /// What a tenant page shows: whose data, over which range, as of when.
    struct Scope: Sendable {
        var viewer: Viewer
        var tenant: Tenant
        var from: Date
        var to: Date
        var now: Date
        /// Every tenant, for the operator's picker (empty for a tenant's own session).
        var tenants: [Tenant]

        var zone: TimeZone { TimeZone(identifier: tenant.timezone) ?? .gmt }
        var isAdmin: Bool { if case .admin = viewer { true } else { false } }

        /// The link to `page` with this scope's tenant and range.
        func href(_ page: Page) -> String {
            var query = "from=\(Console.dateParameter(from))&to=\(Console.dateParameter(to))"
            if isAdmin { query = "tenant=\(Console.percentEncoded(tenant.id))&" + query }
            return "/console/\(page.rawValue)?\(query)"
        }
    }

    /// An answer that is an error page.
    struct Failure: Error {
        var status: HTTPResponse.Status
        var message: String
    }

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/console") { request, _ in await home(request) }
        router.get("/console/signin") { _, _ in Self.page(.ok, signInPage(message: nil)) }
        router.post("/console/signin") { request, _ in await signIn(request) }
        router.post("/console/signout") { request, _ in
            Self.redirect("/console/signin", cookie: ConsoleSessions.clearCookie(secure: Self.isHTTPS(request)))
        }
        router.get("/console/style.css") { _, _ in Self.asset(ConsoleStyle.css, type: "text/css; charset=utf-8") }
        router.get("/console/favicon.svg") { _, _ in Self.asset(ConsoleStyle.favicon, type: "image/svg+xml") }
        for page in Page.allCases {
            router.get(RouterPath("/console/" + page.rawValue)) { request, _ in await serve(page, request) }
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("/console/**", method: method) { _, _ in
                Self.page(.notFound, layout(title: "Not found", viewer: nil, body: "<p>No such console page.</p>"))
            }
        }
    }

    // MARK: Sessions

    /// The signed-in viewer, or nil: no cookie, a bad or expired one, or (for a tenant) a key since revoked
    /// or a tenant since suspended. The key is read from the store each time, so revocation ends the
    /// session at once.
    func viewer(_ request: Request) async -> Viewer? {
        guard let value = request.cookies[ConsoleSessions.cookieName]?.value,
            let session = sessions.verify(value)
        else { return nil }
        switch session.role {
        case .admin:
            return admin.isEnabled ? .admin : nil
        case .tenant:
            let store = store
            let found = try? await offEventLoop {
                (try await store.tenant(session.tenantID), try await store.keys(tenant: session.tenantID))
            }
            guard let (tenant, keys) = found, tenant.id == session.tenantID, tenant.isActive,
                let key = keys.first(where: { $0.id == session.keyID }), key.tenantID == tenant.id, !key.isRevoked
            else { return nil }
            return .tenant(tenant, key: key)
        }
    }

    /// `POST /console/signin` with `token=` in a form body (never in the URL, never logged).
    func signIn(_ request: Request) async -> Response {
        // A form posted from another site is refused (the cookie's SameSite covers the other requests).
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site == "cross-site" || site == "same-site" {
            return Self.page(.forbidden, signInPage(message: "Sign in from the console's own page."))
        }
        var request = request
        guard let body = try? await request.collectBody(upTo: 16 * 1024) else {
            return Self.page(.contentTooLarge, signInPage(message: "The form was too large."))
        }
        let token = Self.formValue(String(buffer: body), "token").map { Authenticator.trimmingSpaces($0[...]) } ?? ""
        guard !token.isEmpty else {
            return Self.page(.unauthorized, signInPage(message: "Enter the admin token or a virtual key."))
        }
        let session: ConsoleSession
        let expires = Date().addingTimeInterval(ConsoleSessions.lifetime)
        if admin.isEnabled, (try? admin.authorize([.authorization: "Bearer " + token])) != nil {
            session = ConsoleSession(role: .admin, tenantID: "", keyID: "", expires: expires)
        } else if let key = await keys.authenticate(secret: token),
            ConsoleSessions.isPlainField(key.tenantID), ConsoleSessions.isPlainField(key.keyID)
        {
            guard key.tenant.isActive else {
                return Self.page(.forbidden, signInPage(message: "This key's tenant is suspended."))
            }
            session = ConsoleSession(role: .tenant, tenantID: key.tenantID, keyID: key.keyID, expires: expires)
        } else {
            return Self.page(
                .unauthorized, signInPage(message: "That is neither the admin token nor an active virtual key."))
        }
        return Self.redirect(
            "/console/", cookie: ConsoleSessions.setCookie(sessions.issue(session), secure: Self.isHTTPS(request)))
    }

    func signInPage(message: String?) -> HTML {
        let error: HTML = message.map { "<p class=\"error\" role=\"alert\" id=\"signin-error\">\($0)</p>" } ?? ""
        let adminNote: HTML =
            admin.isEnabled ? "the admin token (every tenant) or " : "(the admin token is not set on this gateway) "
        return layout(
            title: "Sign in", viewer: nil,
            body: """
                <p>Sign in with \(adminNote)a tenant's virtual key (that tenant only). The token is sent in \
                the form's body and kept nowhere; the session lasts an hour.</p>\(error)
                <form class="signin" method="post" action="/console/signin">\
                <label for="token">Admin token or virtual key</label>\
                <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>\
                <button type="submit">Sign in</button></form>
                """)
    }

    // MARK: Pages

    /// `/console/`: the operator's list of tenants; a tenant goes to its spend.
    func home(_ request: Request) async -> Response {
        guard let viewer = await viewer(request) else { return Self.redirect("/console/signin") }
        guard request.uri.path.hasSuffix("/") else { return Self.redirect("/console/") }
        guard case .admin = viewer else { return Self.redirect("/console/spend") }
        let store = store
        guard let tenants = try? await offEventLoop({ try await store.tenants() }) else {
            return Self.page(
                .internalServerError, layout(title: "Error", viewer: viewer, body: "<p>The store failed.</p>"))
        }
        var table = ConsoleTable(
            id: "tenants", caption: "Tenants",
            columns: [("Name", false), ("Id", false), ("Status", false), ("Plan", false), ("Time zone", false)])
        for t in tenants {
            let link = "/console/spend?tenant=\(Self.percentEncoded(t.id))"
            table.rows.append([
                "<a href=\"\(link)\">\(t.name)</a>", "\(t.id)", "\(t.status.rawValue)", "\(t.plan ?? "(default)")",
                "\(t.timezone)",
            ])
        }
        return Self.page(
            .ok, layout(title: "Tenants", viewer: viewer, body: "<p>Pick a tenant to see its reports.</p>\(table.html)")
        )
    }

    func serve(_ page: Page, _ request: Request) async -> Response {
        guard let viewer = await viewer(request) else { return Self.redirect("/console/signin") }
        do {
            let scope = try await scope(request, viewer)
            let body = try await offEventLoop { try await render(page, scope) }
            return Self.page(.ok, layout(title: page.title, viewer: viewer, scope: scope, current: page, body: body))
        } catch let failure as Failure {
            return Self.page(
                failure.status,
                layout(title: failure.status.reasonPhrase, viewer: viewer, body: "<p>\(failure.message)</p>"))
        } catch {
            return Self.page(
                .internalServerError, layout(title: "Error", viewer: viewer, body: "<p>The report failed.</p>"))
        }
    }

    func render(_ page: Page, _ scope: Scope) async throws -> HTML {
        switch page {
        case .spend: try await spend(scope)
        case .tokens: try await tokens(scope)
        case .quota: try await quota(scope)
        case .whatif: try await whatIf(scope)
        case .records: try await records(scope)
        }
    }

    /// The tenant and range a page is about. A tenant's session sees only its own tenant: asking for any
    /// other is refused before the store is asked about it.
    func scope(_ request: Request, _ viewer: Viewer) async throws -> Scope {
        let asked = request.uri.queryParameters["tenant"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let now = Date()
        let (from, to) = try Self.range(request, now: now)
        switch viewer {
        case .tenant(let own, _):
            if let asked, asked != own.id && asked != own.name {
                throw Failure(status: .forbidden, message: "This session may only see its own tenant.")
            }
            return Scope(viewer: viewer, tenant: own, from: from, to: to, now: now, tenants: [])
        case .admin:
            guard let asked else { throw Failure(status: .badRequest, message: "Pick a tenant on the Tenants page.") }
            let store = store
            let tenants = try await offEventLoop { try await store.tenants() }
            guard let tenant = tenants.first(where: { $0.id == asked }) ?? tenants.first(where: { $0.name == asked })
            else { throw Failure(status: .notFound, message: "No such tenant.") }
            return Scope(viewer: viewer, tenant: tenant, from: from, to: to, now: now, tenants: tenants)
        }
    }

    /// `from` and `to` (RFC 3339 or `YYYY-MM-DD`, UTC midnight); by default the 30 days to tomorrow's
    /// midnight (UTC). At most 366 days, so a chart stays readable and a page stays cheap.
    static func range(_ request: Request, now: Date) throws -> (Date, Date) {
        func instant(_ name: String) throws -> Date? {
            guard let text = request.uri.queryParameters[Substring(name)].map(String.init), !text.isEmpty else {
                return nil
            }
            guard let date = CalendarPeriod.instant(text) else {
                throw Failure(
                    status: .badRequest, message: "\(name) must be a date (YYYY-MM-DD) or an RFC 3339 instant.")
            }
            return date
        }
        let to = try instant("to") ?? CalendarPeriod.containing(now, kind: .day, timeZone: .gmt).end
        let from = try instant("from") ?? to.addingTimeInterval(-30 * 86_400)
        guard from < to else { throw Failure(status: .badRequest, message: "from must be before to.") }
        guard to.timeIntervalSince(from) <= 366 * 86_400 else {
            throw Failure(status: .badRequest, message: "The range may be at most 366 days.")
        }
        return (from, to)
    }
}
