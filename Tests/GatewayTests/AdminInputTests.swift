#if os(Linux)
    import Foundation
    import Gateway
    import Logging
    import Metering
    import NIOCore
    import NIOPosix
    import ServiceLifecycle
    import Testing

    /// The admin API's input handling on a live gateway (with an admin token), requests written byte for
    /// byte: path parameters, body field types, periods and instants, and methods and paths it does not
    /// serve. Each case was found by Schemathesis against docs/openapi.yaml.
    @Suite("Admin API input over live sockets")
    struct AdminInputTests {
        static let token = "admin-input-test-token-0123456789"

        /// A live gateway with the admin API on, a fresh store and the tenant `acme` with one key.
        struct Gateway: Sendable {
            let port: Int
            let store: GatewayStore
            let tenant: Tenant
            let key: VirtualKey
            let secret: String

            struct Reply {
                var status: Int
                var headers: [(String, String)]
                var body: String
                var json: JSONValue? { try? JSONReader.parse(Array(body.utf8)) }
                func header(_ name: String) -> String? { headers.first { $0.0 == name.lowercased() }?.1 }
                var error: JSONValue? { json?["error"] }
            }

            /// Sends one request exactly as given (the target is not re-encoded) and reads the answer.
            func send(
                _ method: String, _ target: String, body: String? = nil, token: String? = AdminInputTests.token
            ) async throws -> Reply {
                let raw = try RawClient(port: port)
                defer { raw.close() }
                var text = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                if let token { text += "Authorization: Bearer \(token)\r\n" }
                if let body {
                    text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                }
                try raw.send(text + "\r\n" + (body ?? ""))
                // Generous: the full suite runs many live servers at once on two cores.
                let (bytes, closed) = await raw.readAll(timeout: .seconds(30))
                let response = String(decoding: bytes, as: UTF8.self)
                guard closed, let split = response.range(of: "\r\n\r\n") else {
                    throw RawClient.RawError("no complete response to \(method) \(target): \(response)")
                }
                let head = response[..<split.lowerBound].components(separatedBy: "\r\n")
                let status = Int(head[0].split(separator: " ")[1]) ?? 0
                let headers = head.dropFirst().map { line -> (String, String) in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    return (
                        parts[0].lowercased(),
                        parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
                    )
                }
                return Reply(status: status, headers: headers, body: String(response[split.upperBound...]))
            }
        }

        static func run(_ body: @Sendable (Gateway) async throws -> Void) async throws {
            let logger = Logger(label: "test")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-admin-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try GatewayStore(dataDirectory: dir)
            let tenant = try store.createTenant(name: "acme")
            let (key, secret) = try store.createKey(tenant: tenant.id, name: "test")
            let config = try GatewayConfig.parse(
                yaml: LiveHarness.configYAML(emulatorPort: 9, maxBody: 64 * 1024), file: "test.yaml")
            let prices = try PriceBook.parse(yaml: LiveHarness.pricesYAML, file: "prices.yaml")
            let plans = try PlanBook.parse(
                yaml: "default_plan: basic\nplans:\n  basic: {}\n  team: {}\n", file: "plans.yaml")
            let port = PortBox()
            let app = try await GatewayServer.buildApplication(
                policies: Policies(gateway: config, prices: prices, plans: plans), store: store,
                eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger,
                environment: ["GATEWAY_ADMIN_TOKEN": token], onServerRunning: { port.set($0.localAddress?.port ?? 0) })
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let gateway = Gateway(
                    port: await port.wait(), store: store, tenant: tenant, key: key, secret: secret)
                do {
                    try await body(gateway)
                } catch {
                    await group.triggerGracefulShutdown()
                    throw error
                }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }

        /// A 400 in OpenAI's format whose `param` is `param`.
        static func expectInvalid(
            _ reply: Gateway.Reply, param: String?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
        ) {
            #expect(reply.status == 400, "\(what): \(reply.status) \(reply.body)", sourceLocation: sourceLocation)
            #expect(
                reply.error?["type"]?.stringValue == "invalid_request_error", "\(what): \(reply.body)",
                sourceLocation: sourceLocation)
            #expect(
                reply.error?["param"]?.stringValue == param, "\(what): \(reply.body)", sourceLocation: sourceLocation)
            #expect(reply.header("x-request-id") != nil, "\(what)", sourceLocation: sourceLocation)
        }

        // MARK: 1. Path parameters

        @Test("path parameters are percent-decoded once: 'my team', 'équipe', '100%' and 'a%20b' are reachable")
        func percentDecodedPathParameters() async throws {
            try await Self.run { g in
                for name in ["my team", "équipe", "100%", "a%20b", "a/b"] { _ = try g.store.createTenant(name: name) }
                let cases: [(String, String)] = [
                    ("my%20team", "my team"), ("%C3%A9quipe", "équipe"), ("%c3%a9quipe", "équipe"),
                    ("100%25", "100%"), ("a%2520b", "a%20b"), ("a%2Fb", "a/b"), ("%61cme", "acme"),
                ]
                for (encoded, name) in cases {
                    let reply = try await g.send("GET", "/admin/v1/tenants/\(encoded)")
                    #expect(reply.status == 200, "\(encoded): \(reply.status) \(reply.body)")
                    #expect(reply.json?["name"]?.stringValue == name, "\(encoded)")
                }
                // Decoded once only: `my%2520team` names the tenant `my%20team`, which does not exist.
                #expect(try await g.send("GET", "/admin/v1/tenants/my%2520team").status == 404)
                let created = try await g.send("POST", "/admin/v1/tenants/my%20team/keys", body: #"{"name":"k"}"#)
                #expect(created.status == 201, "\(created.body)")
                let listed = try await g.send("GET", "/admin/v1/tenants/%C3%A9quipe/keys")
                #expect(listed.status == 200 && listed.json?["data"]?.arrayValue?.count == 0)
                let usage = try await g.send("GET", "/admin/v1/tenants/my%20team/usage?period=2026-11")
                #expect(usage.status == 200, "\(usage.body)")
                // Keys too: an id with an escaped letter.
                let id = g.key.id
                let escaped = "%" + String(format: "%02X", Int(id.utf8.first!)) + id.dropFirst()
                let limited = try await g.send("PUT", "/admin/v1/keys/\(escaped)/limits", body: #"{"concurrent":3}"#)
                #expect(limited.status == 200 && limited.json?["id"]?.stringValue == id, "\(limited.body)")
            }
        }

        @Test("invalid percent-encoding or invalid UTF-8 in a path parameter is a 400 naming it")
        func invalidPathEncoding() async throws {
            try await Self.run { g in
                for bad in ["%ZZ", "abc%", "abc%4", "%G1", "%C3", "%C3%28", "%FF", "%E2%82", "%ED%A0%80", "%C0%AF"] {
                    Self.expectInvalid(try await g.send("GET", "/admin/v1/tenants/\(bad)"), param: "tenant", bad)
                    Self.expectInvalid(
                        try await g.send("PATCH", "/admin/v1/tenants/\(bad)", body: "{}"), param: "tenant", bad)
                    Self.expectInvalid(try await g.send("POST", "/admin/v1/keys/\(bad)/revoke"), param: "key", bad)
                }
            }
        }

        // MARK: 2. Key limits

        @Test("key limits: a wrong type, a fraction, an overflow, a negative or zero is a 400 naming the field")
        func keyLimitTypes() async throws {
            try await Self.run { g in
                let path = "/admin/v1/keys/\(g.key.id)/limits"
                let set = try await g.send(
                    "PUT", path, body: #"{"requests_per_minute":60,"tokens_per_minute":1000,"concurrent":2}"#)
                #expect(set.status == 200, "\(set.body)")
                let bad: [(String, String)] = [
                    (#"{"concurrent":2.5}"#, "concurrent"), (#"{"concurrent":2.0}"#, "concurrent"),
                    (#"{"concurrent":1e2}"#, "concurrent"), (#"{"requests_per_minute":"x"}"#, "requests_per_minute"),
                    (#"{"requests_per_minute":"60"}"#, "requests_per_minute"), (#"{"concurrent":true}"#, "concurrent"),
                    (#"{"concurrent":[1]}"#, "concurrent"), (#"{"concurrent":{}}"#, "concurrent"),
                    (#"{"tokens_per_minute":9223372036854775808}"#, "tokens_per_minute"),
                    (#"{"tokens_per_minute":9223372036854775807}"#, "tokens_per_minute"),
                    (#"{"tokens_per_minute":2147483648}"#, "tokens_per_minute"),
                    (#"{"concurrent":-3}"#, "concurrent"), (#"{"concurrent":0}"#, "concurrent"),
                    (#"{"requests_per_minute":0}"#, "requests_per_minute"),
                    (#"{"requests_per_minute":10000001}"#, "requests_per_minute"),
                    (#"{"concurrent":1000001}"#, "concurrent"), (#"{"tokens_per_minute":0}"#, "tokens_per_minute"),
                ]
                for (body, field) in bad {
                    Self.expectInvalid(try await g.send("PUT", path, body: body), param: field, body)
                }
                // Nothing was changed by the refused requests.
                let key = try #require(try g.store.keys(tenant: g.tenant.id).first)
                #expect(key.requestsPerMinute == 60 && key.tokensPerMinute == 1000 && key.concurrent == 2)

                // The edges of the ranges are accepted; null (and, PUT replacing all three, absence) clears.
                let edges = try await g.send(
                    "PUT", path,
                    body: #"{"requests_per_minute":10000000,"tokens_per_minute":2147483647,"concurrent":1}"#)
                #expect(edges.status == 200, "\(edges.body)")
                #expect(edges.json?["limits"]?["tokens_per_minute"]?.intValue == 2_147_483_647)
                let cleared = try await g.send("PUT", path, body: #"{"requests_per_minute":null,"concurrent":5}"#)
                #expect(cleared.status == 200)
                #expect(cleared.json?["limits"]?["requests_per_minute"]?.isNull == true)
                #expect(cleared.json?["limits"]?["tokens_per_minute"]?.isNull == true)
                #expect(cleared.json?["limits"]?["concurrent"]?.intValue == 5)
            }
        }

        @Test("the store refuses out-of-range key limits too (the CLI writes through it)")
        func storeRefusesKeyLimits() async throws {
            try await Self.run { g in
                for limits in [
                    RateLimits(concurrent: -3), RateLimits(requestsPerMinute: 0), RateLimits(tokensPerMinute: 0),
                ] {
                    #expect(throws: StoreError.self) { try g.store.setKeyLimits(g.key.id, limits: limits) }
                }
                let key = try g.store.setKeyLimits(g.key.id, limits: RateLimits(concurrent: 1))
                #expect(key.concurrent == 1)
            }
        }

        // MARK: 3. Other bodies

        @Test("tenant changes: wrong types, unknown statuses and time zones are 400 naming the field, nothing changed")
        func tenantUpdateTypes() async throws {
            try await Self.run { g in
                let path = "/admin/v1/tenants/acme"
                let bad: [(String, String)] = [
                    (#"{"status":5}"#, "status"), (#"{"timezone":7}"#, "timezone"),
                    (#"{"status":"deleted"}"#, "status"), (#"{"status":"Active"}"#, "status"),
                    (#"{"status":null}"#, "status"), (#"{"timezone":"Mars/Olympus"}"#, "timezone"),
                    (#"{"timezone":""}"#, "timezone"), (#"{"timezone":null}"#, "timezone"),
                    (#"{"plan":5}"#, "plan"), (#"{"plan":null}"#, "plan"), (#"{"plan":"gold"}"#, "plan"),
                    (#"{"currency":"usd"}"#, "currency"), (#"{"currency":840}"#, "currency"),
                    (#"{"plan":"team","status":"gone"}"#, "status"),
                ]
                for (body, field) in bad {
                    Self.expectInvalid(try await g.send("PATCH", path, body: body), param: field, body)
                }
                let both = try await g.send("PATCH", path, body: #"{"status":5,"timezone":7}"#)
                #expect(both.status == 400 && both.error?["param"]?.stringValue != nil, "\(both.body)")
                let tenant = try g.store.tenant("acme")
                #expect(tenant.status == .active && tenant.timezone == "UTC" && tenant.plan == nil)

                let good = try await g.send(
                    "PATCH", path, body: #"{"status":"suspended","timezone":"Asia/Shanghai","plan":"team"}"#)
                #expect(good.status == 200, "\(good.body)")
                #expect(good.json?["timezone"]?.stringValue == "Asia/Shanghai")
            }
        }

        @Test("creating tenants and keys: wrong types are 400 naming the field, and nothing is created")
        func createTypes() async throws {
            try await Self.run { g in
                let tenants: [(String, String)] = [
                    (#"{"name":null}"#, "name"), (#"{"name":5}"#, "name"), (#"{"name":""}"#, "name"),
                    (#"{"name":"t1","timezone":"Nowhere/Land"}"#, "timezone"),
                    (#"{"name":"t2","timezone":3}"#, "timezone"), (#"{"name":"t3","currency":"usd"}"#, "currency"),
                    (#"{"name":"t4","plan":"gold"}"#, "plan"), (#"{"name":"t5","plan":false}"#, "plan"),
                ]
                for (body, field) in tenants {
                    Self.expectInvalid(try await g.send("POST", "/admin/v1/tenants", body: body), param: field, body)
                }
                #expect(try g.store.tenants().map(\.name) == ["acme"])
                let keys = "/admin/v1/tenants/acme/keys"
                for body in [#"{"name":null}"#, #"{"name":5}"#, #"{"name":["k"]}"#] {
                    Self.expectInvalid(try await g.send("POST", keys, body: body), param: "name", body)
                }
                #expect(try g.store.keys(tenant: "acme").count == 1)
                #expect(try await g.send("POST", keys).status == 201)
                #expect(try await g.send("POST", keys, body: #"{"name":"ci"}"#).status == 201)
            }
        }

        @Test("budgets and quotas: wrong types, negatives and unknown periods are 400 naming the field")
        func budgetAndQuotaTypes() async throws {
            try await Self.run { g in
                let budget = "/admin/v1/tenants/acme/budget"
                let budgets: [(String, String)] = [
                    (#"{"limit":5}"#, "limit"), (#"{"limit":null}"#, "limit"), (#"{"limit":"-5"}"#, "limit"),
                    (#"{"limit":"1e3"}"#, "limit"), (#"{"limit":"5","period":5}"#, "period"),
                    (#"{"limit":"5","period":"year"}"#, "period"), (#"{"limit":"5","mode":true}"#, "mode"),
                    (#"{"limit":"5","mode":"strict"}"#, "mode"), (#"{"limit":"5","currency":"usd"}"#, "currency"),
                    (#"{"limit":"5","currency":null}"#, "currency"),
                ]
                for (body, field) in budgets {
                    Self.expectInvalid(try await g.send("PUT", budget, body: body), param: field, body)
                }
                #expect(try g.store.tenant("acme").budget == nil)
                #expect(try await g.send("PUT", budget, body: #"{"limit":"5","period":"week"}"#).status == 200)

                let quota = "/admin/v1/tenants/acme/quota"
                let quotas: [(String, String)] = [
                    (#"{"amount":true}"#, "amount"), (#"{"amount":2.5}"#, "amount"), (#"{"amount":-1}"#, "amount"),
                    (#"{"amount":"-1"}"#, "amount"), (#"{"amount":"+5"}"#, "amount"), (#"{"amount":"1.5"}"#, "amount"),
                    (#"{"amount":null}"#, "amount"), (#"{"amount":9223372036854775808}"#, "amount"),
                    (#"{"amount":"2.5","currency":"CNY","period":"week"}"#, "period"),
                    (#"{"amount":5,"period":3}"#, "period"), (#"{"amount":"x","currency":"CNY"}"#, "amount"),
                    (#"{"amount":-2,"currency":"CNY"}"#, "amount"), (#"{"amount":"5","currency":5}"#, "currency"),
                ]
                for (body, field) in quotas {
                    Self.expectInvalid(try await g.send("PUT", quota, body: body), param: field, body)
                }
                #expect(try g.store.tenant("acme").quota == nil)
                #expect(try await g.send("PUT", quota, body: #"{"amount":0,"period":"day"}"#).status == 200)
                #expect(try await g.send("PUT", quota, body: #"{"amount":"2.50","currency":"CNY"}"#).status == 200)
                #expect(try await g.send("PUT", quota, body: #"{"amount":3,"currency":"CNY"}"#).status == 200)
            }
        }

        // MARK: 4. Periods and instants

        @Test("usage periods are strict (admin and tenant-facing), export bounds too")
        func strictPeriods() async throws {
            try await Self.run { g in
                for bad in [
                    "9223372036854775807-01", "2026-%2B1", "1-1-1", "2026-1", "0001-01", "2026-02-30", "2026-11%20",
                ] {
                    Self.expectInvalid(
                        try await g.send("GET", "/admin/v1/tenants/acme/usage?period=\(bad)"), param: "period", bad)
                    Self.expectInvalid(
                        try await g.send("GET", "/v1/usage?period=\(bad)", token: g.secret), param: "period", bad)
                }
                let ok = try await g.send("GET", "/admin/v1/tenants/acme/usage?period=2026-11-30")
                #expect(ok.status == 200 && ok.json?["from"]?.stringValue?.hasPrefix("2026-11-30T00:00:00") == true)
                for bad in ["2026-11-01T24:00:00Z", "2026-02-30T00:00:00Z", "2026-11-01T00:00:00Zjunk", "0001-01-01"] {
                    let reply = try await g.send("GET", "/admin/v1/billing/export?from=\(bad)&to=2027-01-01")
                    #expect(
                        reply.status == 400 && reply.error?["param"]?.stringValue == "from", "\(bad): \(reply.body)")
                }
                let export = try await g.send(
                    "GET", "/admin/v1/billing/export?from=2026-01-01&to=2026-11-01T08:00:00%2B08:00")
                #expect(export.status == 200, "\(export.body)")
            }
        }

        // MARK: 5. Methods and unknown paths

        @Test("a method a known path does not serve is 405 with Allow and an OpenAI-format error")
        func methodNotAllowed() async throws {
            try await Self.run { g in
                let cases: [(String, String, String)] = [
                    ("DELETE", "/admin/v1/tenants", "GET, POST"), ("PUT", "/admin/v1/tenants", "GET, POST"),
                    ("PATCH", "/admin/v1/tenants", "GET, POST"), ("OPTIONS", "/admin/v1/tenants", "GET, POST"),
                    ("TRACE", "/admin/v1/tenants", "GET, POST"), ("QUERY", "/admin/v1/tenants", "GET, POST"),
                    ("DELETE", "/admin/v1/tenants/acme", "GET, PATCH"), ("GET", "/admin/v1/keys/x/limits", "PUT"),
                    ("GET", "/admin/v1/keys/x/revoke", "POST"),
                    ("POST", "/admin/v1/tenants/acme/budget", "PUT, DELETE"),
                    ("POST", "/admin/v1/tenants/acme/quota", "GET, PUT, DELETE"),
                    ("PUT", "/admin/v1/tenants/acme/usage", "GET"), ("POST", "/admin/v1/billing/export", "GET"),
                    ("DELETE", "/v1/usage", "GET"),
                ]
                for (method, path, allow) in cases {
                    // Without a credential as well: routing comes first.
                    for token in [Self.token, nil] {
                        let reply = try await g.send(method, path, token: token)
                        #expect(reply.status == 405, "\(method) \(path): \(reply.status) \(reply.body)")
                        #expect(reply.header("allow") == allow, "\(method) \(path)")
                        #expect(reply.header("x-request-id") != nil, "\(method) \(path)")
                        #expect(reply.error?["type"]?.stringValue == "invalid_request_error", "\(reply.body)")
                        #expect(reply.error?["code"]?.stringValue == "method_not_allowed", "\(reply.body)")
                    }
                }
                let patch = try await g.send("PATCH", "/admin/v1/tenants/acme/keys")
                #expect(
                    patch.error?["message"]?.stringValue
                        == "PATCH is not allowed on /admin/v1/tenants/{tenant}/keys; allowed: GET, POST.")
                let head = try await g.send("HEAD", "/admin/v1/tenants")
                #expect(head.status == 405 && head.header("allow") == "GET, POST" && head.body.isEmpty)
                // The served methods are unchanged.
                #expect(try await g.send("GET", "/admin/v1/tenants").status == 200)
                #expect(try await g.send("GET", "/admin/v1/tenants", token: nil).status == 401)
            }
        }

        @Test("an unknown /admin path is 404 in OpenAI's format with x-request-id, whatever the method")
        func unknownAdminPath() async throws {
            try await Self.run { g in
                let paths = [
                    "/admin", "/admin/", "/admin/v2/tenants", "/admin/v1/nope", "/admin/v1/tenants/acme/keys/extra",
                    "/admin/v1/tenants/acme/budget/x/y", "/admin/v1/keys/x", "/admin/v1/billing", "/admin/v1",
                    "/admin/v1/keys", "/admin/v1/keys/x/revoke/y", "/admin/v1/billing/export/x",
                ]
                for path in paths {
                    for method in ["GET", "POST", "DELETE", "OPTIONS"] {
                        let reply = try await g.send(method, path)
                        #expect(reply.status == 404, "\(method) \(path): \(reply.status) \(reply.body)")
                        #expect(reply.header("x-request-id") != nil, "\(method) \(path)")
                        #expect(reply.header("content-type") == "application/json", "\(method) \(path)")
                        #expect(reply.error?["type"]?.stringValue == "invalid_request_error", "\(reply.body)")
                        #expect(reply.error?["code"]?.stringValue == "unknown_url", "\(reply.body)")
                    }
                }
            }
        }
    }
#endif
