import Foundation

/// The ledger as a FinOps FOCUS 1.x cost-and-usage dataset, so cost tools that read FOCUS take the
/// gateway's bill as one more provider. One row per priced record (a record without a cost is no
/// charge); `BilledCost` is the record's charged cost (after free quota), so the column sums to the
/// ledger's charged cost exactly, per currency. `ListCost` is the cost before free quota.
public enum FocusExport {
    public static let columns = [
        "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
        "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
        "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "EffectiveCost",
        "InvoiceIssuerName", "ListCost", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName",
        "PublisherName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId",
        "SkuPriceId", "SubAccountId", "SubAccountName", "Tags", "x_RecordId", "x_FreeCost",
    ]

    /// Who issues the bill: the gateway's operator.
    static let issuer = "LLM Metering Gateway"

    public static func line(_ r: BillingRecord, tenantName: String) -> String {
        guard let cost = r.cost else { return "" }
        let zero = Money.zero(cost.currency)
        let billed = r.charged ?? zero
        let utc = TimeZone(identifier: "UTC")!
        let month = CalendarPeriod.containing(r.startedAt, kind: .month, timeZone: utc)
        let tokens = String(Int64(r.usage.prompt).saturatingAdding(Int64(r.usage.completion)))
        let tags = JSONWriter.serialize(
            .object([
                ("key_id", .string(r.keyID)), ("status", .string(r.status.rawValue)),
                ("endpoint", .string(r.endpoint)), ("upstream_model", .string(r.upstreamModel)),
            ]))
        let fields: [String] = [
            billed.decimalString, "gateway", issuer, cost.currency, BillingExportFormat.timestamp(month.end),
            BillingExportFormat.timestamp(month.start), "Usage", "",
            "\(r.model) via \(r.provider): \(r.usage.prompt) prompt, \(r.usage.completion) completion tokens",
            "Usage-Based", BillingExportFormat.timestamp(max(r.endedAt, r.startedAt)),
            BillingExportFormat.timestamp(r.startedAt), tokens, "Tokens", cost.decimalString, billed.decimalString,
            issuer, cost.decimalString, "Standard", tokens, "Tokens", issuer, r.provider, r.requestID, r.model,
            "LLM Request", "AI and Machine Learning", r.model, r.priceID ?? "", r.priceEntry ?? "", r.tenantID,
            tenantName, tags, r.id, (r.freeCost ?? zero).decimalString,
        ]
        return fields.map(BillingExportFormat.csvField).joined(separator: ",") + "\r\n"
    }
}
