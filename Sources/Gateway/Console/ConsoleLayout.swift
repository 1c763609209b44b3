import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The page frame, the answers' headers, and the small parsing the console needs.
extension Console {
    /// Every page: a skip link, the navigation (plain links), the sign-out form, and the page's body.
    func layout(
        title: String, viewer: Viewer?, scope: Scope? = nil, current: Page? = nil, body: HTML
    ) -> HTML {
        var nav: [HTML] = []
        var who: HTML = ""
        switch viewer {
        case .admin?:
            nav.append("<li><a href=\"/console/\">Tenants</a></li>")
            who = "<span class=\"who\">Operator</span>"
        case .tenant(let tenant, let key)?:
            who = "<span class=\"who\">Tenant \(tenant.name) · key \(key.prefix)…</span>"
        case nil:
            break
        }
        if let scope {
            for page in Page.allCases {
                let currentAttribute: HTML = page == current ? " aria-current=\"page\"" : ""
                nav.append("<li><a href=\"\(scope.href(page))\"\(currentAttribute)>\(page.label)</a></li>")
            }
        }
        let signOut: HTML =
            viewer == nil
            ? "" : "<form method=\"post\" action=\"/console/signout\"><button type=\"submit\">Sign out</button></form>"
        let heading: HTML = scope.map { "\(title): \($0.tenant.name)" } ?? "\(title)"
        let filters: HTML = scope.map(filterForm) ?? ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">\
            <meta name="viewport" content="width=device-width, initial-scale=1">\
            <title>\(title) · Gateway console</title>\
            <link rel="stylesheet" href="/console/style.css">\
            <link rel="icon" href="/console/favicon.svg" type="image/svg+xml"></head>
            <body><a class="skip" href="#main">Skip to content</a>
            <header><span class="brand">Gateway console</span>\
            <nav aria-label="Console"><ul>\(nav)</ul></nav>\(who)\(signOut)</header>
            <main id="main" tabindex="-1"><h1>\(heading)</h1>\(filters)\(body)</main>
            </body></html>
            """
    }

    /// The tenant (operator only) and range, as a GET form that keeps the current page.
    func filterForm(_ scope: Scope) -> HTML {
        var tenantPicker: HTML = ""
        if scope.isAdmin {
            let options = scope.tenants.map { t -> HTML in
                let selected: HTML = t.id == scope.tenant.id ? " selected" : ""
                return "<option value=\"\(t.id)\"\(selected)>\(t.name) (\(t.id))</option>"
            }
            tenantPicker = "<label>Tenant <select name=\"tenant\">\(options)</select></label>"
        }
        return """
            <form class="filters" method="get">\(tenantPicker)\
            <label>From <input type="date" name="from" value="\(Self.dateParameter(scope.from).prefix(10).description)"></label>\
            <label>To (exclusive) <input type="date" name="to" value="\(Self.dateParameter(scope.to).prefix(10).description)"></label>\
            <button type="submit">Show</button></form>
            <p class="note" id="range" data-tenant="\(scope.tenant.id)" data-from="\(ConsoleFormat.timestamp(scope.from))" \
            data-to="\(ConsoleFormat.timestamp(scope.to))">Tenant \(scope.tenant.id), time zone \(scope.tenant.timezone); \
            records that started from \(ConsoleFormat.timestamp(scope.from)) to \(ConsoleFormat.timestamp(scope.to)) \
            (UTC, end excluded); days are the tenant's own.</p>
            """
    }

    /// An HTML answer with the console's headers: nothing may load from elsewhere, no framing, no
    /// caching of pages that hold a tenant's figures, no referrer.
    static func page(_ status: HTTPResponse.Status, _ html: HTML, cookie: String? = nil) -> Response {
        var headers = securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.markup)))
    }

    static func redirect(_ location: String, cookie: String? = nil) -> Response {
        var headers = securityHeaders
        headers[.location] = location
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: .seeOther, headers: headers)
    }

    static func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders
        headers[.contentType] = type
        headers[.cacheControl] = "max-age=300"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static let securityHeaders: HTTPFields = {
        var headers = HTTPFields()
        headers[HTTPField.Name("Content-Security-Policy")!] =
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            + "base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[.cacheControl] = "no-store"
        return headers
    }()

    /// Whether the browser reached us over https (through a proxy that says so): the cookie is then
    /// `Secure`.
    static func isHTTPS(_ request: Request) -> Bool {
        request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https" || request.uri.scheme == .https
    }

    /// A field of an `application/x-www-form-urlencoded` body.
    static func formValue(_ body: String, _ name: String) -> String? {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (s: Substring) in AdminAPI.percentDecoded(s.replacingOccurrences(of: "+", with: " ")) }
            guard parts.count == 2, decode(parts[0]) == name else { continue }
            return decode(parts[1])
        }
        return nil
    }

    static func percentEncoded(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// A range bound for a link: the date alone at UTC midnight, else the full instant.
    static func dateParameter(_ date: Date) -> String {
        let text = ConsoleFormat.timestamp(date)
        return text.hasSuffix("T00:00:00.000Z") ? String(text.prefix(10)) : percentEncoded(text)
    }
}
