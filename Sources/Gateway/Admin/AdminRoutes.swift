import Foundation
import HTTPTypes
import Hummingbird
import Metering
import NIOCore

/// The streamed billing export of the admin API (behind ``AdminAuthentication`` like the rest).
struct AdminRoutes: Sendable {
    let store: any Store

    static let exportPath = "/admin/v1/billing/export"

    func register(on admin: RouterGroup<GatewayRequestContext>) {
        admin.get(RouterPath(String(Self.exportPath.dropFirst(AdminAPI.prefix.count)))) { request, context in
            await exportBilling(request, context: context)
        }
    }

    /// `GET /admin/v1/billing/export?from=&to=&tenant=&format=csv|jsonl|focus|attempts`, streamed.
    func exportBilling(_ request: Request, context: GatewayRequestContext) async -> Response {
        do throws(GatewayError) {
            let q = request.uri.queryParameters
            // The same bounds as the reports: required, strict RFC 3339 or YYYY-MM-DD, from before to.
            let (from, to) = try AdminAPI.range(request)
            let formatText = q["format"].map(String.init) ?? "csv"
            guard let format = BillingExportFormat(rawValue: formatText) else {
                throw GatewayError(status: 400, message: "format must be csv, jsonl or focus.", param: "format")
            }
            var tenantID: String?
            if let tenant = q["tenant"].map(String.init) {
                do {
                    tenantID = try await offEventLoop { try await store.tenant(tenant).id }
                } catch {
                    throw GatewayError(status: 404, message: "No tenant '\(tenant)'.", param: "tenant")
                }
            }
            let exporter = BillingExporter(store: store)
            let query = GatewayStore.BillingQuery(from: from, to: to, tenantID: tenantID)
            var headers = HTTPFields()
            headers[.contentType] = format.contentType
            headers[.requestID] = context.requestID
            headers[.contentDisposition] = "attachment; filename=\"billing.\(format.rawValue)\""
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    try await exporter.export(query, format: format) { text in
                        try await writer.write(ByteBuffer(string: text))
                    }
                    try await writer.finish(nil)
                })
        } catch {
            return error.response(dialect: .openai, requestID: context.requestID)
        }
    }
}
