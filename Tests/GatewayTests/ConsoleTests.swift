import Foundation
import Metering
import Testing

@testable import Gateway

@Suite("Console: escaping, session cookies and chart arithmetic")
struct ConsoleTests {
    @Test("text is escaped for element content and quoted attributes; markup values go in as they are")
    func escaping() {
        #expect(
            HTML.escape(#"<a href="x" title='y'>&</a>"#)
                == "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;")
        let name = "<script>alert(1)</script>"
        let inner: HTML = "<b>\(name)</b>"
        let page: HTML = "<p title=\"\(name)\">\(inner)</p>"
        #expect(
            page.markup
                == "<p title=\"&lt;script&gt;alert(1)&lt;/script&gt;\"><b>&lt;script&gt;alert(1)&lt;/script&gt;</b></p>"
        )
        #expect(HTML.escape("plain ünïcode ✓") == "plain ünïcode ✓")
    }

    @Test("a cookie verifies until it expires, and any change to it is refused")
    func sessionRoundTrip() throws {
        let sessions = ConsoleSessions(adminToken: "token-a")
        let now = Date()
        let session = ConsoleSession(
            role: .tenant, tenantID: "ten_1", keyID: "key_1", expires: now.addingTimeInterval(600).rounded)
        let value = sessions.issue(session)
        #expect(sessions.verify(value, now: now) == session)
        #expect(sessions.verify(value, now: now.addingTimeInterval(601)) == nil)
        // Another replica with the same token accepts it; one with another token (or none) does not.
        #expect(ConsoleSessions(adminToken: "token-a").verify(value, now: now) == session)
        #expect(ConsoleSessions(adminToken: "token-b").verify(value, now: now) == nil)
        #expect(ConsoleSessions(adminToken: nil).verify(value, now: now) == nil)
        // One character changed, anywhere: refused.
        for i in [0, value.count / 2, value.count - 2] {
            var chars = Array(value)
            chars[i] = chars[i] == "A" ? "B" : "A"
            #expect(sessions.verify(String(chars), now: now) == nil)
        }
        #expect(sessions.verify("", now: now) == nil)
        #expect(sessions.verify("a.b.c", now: now) == nil)
        // Two cookies for the same session differ (a nonce), so neither says anything about the other.
        #expect(sessions.issue(session) != value)
    }

    @Test("a signed payload with an expiry beyond a session's lifetime, or fields that do not fit its role, is refused")
    func payloadChecks() {
        let sessions = ConsoleSessions(adminToken: "token-a")
        let now = Date()
        let far = ConsoleSession(role: .admin, tenantID: "", keyID: "", expires: now.addingTimeInterval(86_400))
        #expect(sessions.verify(sessions.issue(far), now: now) == nil)
        let odd = ConsoleSession(role: .admin, tenantID: "ten_1", keyID: "", expires: now.addingTimeInterval(60))
        #expect(sessions.verify(sessions.issue(odd), now: now) == nil)
        let keyless = ConsoleSession(role: .tenant, tenantID: "ten_1", keyID: "", expires: now.addingTimeInterval(60))
        #expect(sessions.verify(sessions.issue(keyless), now: now) == nil)
    }

    @Test("the cookie is scoped to the console, out of scripts' reach, same-site only, and expires")
    func cookieAttributes() {
        #expect(
            ConsoleSessions.setCookie("v", secure: false)
                == "gw_console=v; Path=/console; Max-Age=3600; HttpOnly; SameSite=Strict")
        #expect(ConsoleSessions.setCookie("v", secure: true).hasSuffix("; SameSite=Strict; Secure"))
        #expect(ConsoleSessions.clearCookie(secure: false).contains("Max-Age=0"))
    }

    @Test("form fields are decoded as browsers encode them")
    func formFields() {
        #expect(Console.formValue("a=1&token=sk-gw%2Bx+y%26z&b=", "token") == "sk-gw+x y&z")
        #expect(Console.formValue("token=", "token") == "")
        #expect(Console.formValue("tok=1", "token") == nil)
        #expect(Console.formValue("token=%zz", "token") == nil)
    }

    @Test("value axes end on round numbers; percentages round half away from zero")
    func arithmetic() {
        #expect(ConsoleChart.niceCeiling(0) == 1)
        #expect(ConsoleChart.niceCeiling(0, minimum: 1_000) == 1_000)
        #expect(ConsoleChart.niceCeiling(260) == 300)
        #expect(ConsoleChart.niceCeiling(2_448_000) == 2_500_000)
        #expect(ConsoleChart.niceCeiling(100) == 100)
        #expect(ConsoleChart.niceCeiling(.max) == .max)
        #expect(Console.percent(4_480_800, of: 4_480_800) == "+100.0%")
        #expect(Console.percent(-1, of: 3) == "-33.3%")
        #expect(Console.percent(1, of: 2_000) == "+0.1%")
        #expect(Console.percent(0, of: 5) == "+0.0%")
        #expect(Console.percent(5, of: 0) == "")
        #expect(ConsoleFormat.fixed(12_345, decimals: 2) == "123.45")
        #expect(ConsoleFormat.fixed(25, decimals: 4) == "0.0025")
    }

    @Test("the next price change is the earliest entry after now, with every price id that changes then")
    func nextPriceChange() {
        let day = { (d: String) in CalendarPeriod.instant(d)! }
        let entry = { (id: String, from: String) in
            PriceEntry(id: "\(id)@\(from)", effectiveFrom: day(from), currency: "USD", input: 1, output: 1)
        }
        let book = PriceBook(entries: [
            "a": [entry("a", "2026-01-01"), entry("a", "2027-02-01")],
            "b": [entry("b", "2027-01-01")], "c": [entry("c", "2027-01-01")],
        ])
        let next = Console.nextPriceChange(book, after: day("2026-12-07"))
        #expect(next?.0 == day("2027-01-01") && next?.1 == ["b", "c"])
        #expect(Console.nextPriceChange(book, after: day("2027-03-01")) == nil)
    }
}

extension Date {
    /// Whole seconds: the cookie carries its expiry to the second.
    fileprivate var rounded: Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}
