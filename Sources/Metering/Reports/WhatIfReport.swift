import Foundation

/// What the same traffic would have cost under another price book (a competitor's list, or this book at
/// a later instant): every completed record's billed usage repriced with the billing rounding, per record,
/// then summed per tenant and model.
public struct WhatIfReport: Sendable {
    public struct Row: Sendable, Equatable {
        public var tenantID: String
        public var model: String
        public var records: Int64 = 0
        /// "" for records that had no price.
        public var actualCurrency: String
        public var actualCost: Int64 = 0
        /// "" when the other book prices none of these records.
        public var whatIfCurrency: String
        public var whatIfCost: Int64 = 0
        /// Records the other book has no price for (left out of `whatIfCost`).
        public var unpriced: Int64 = 0
    }

    public var rows: [Row]

    /// `at`: price every record at this instant instead of at its own start. A record is looked up in
    /// `prices` by the price id it was billed under, then by its model name.
    public static func build(records: [BillingRecord], prices: PriceBook, at instant: Date? = nil) -> WhatIfReport {
        var builder = Builder(prices: prices, at: instant)
        for record in records { builder.add(record) }
        return builder.finish()
    }

    /// Adds records one at a time (a ledger streamed page by page), keeping only the sums.
    public struct Builder {
        struct Key: Hashable {
            var tenant: String
            var model: String
            var actual: String
            var whatIf: String
        }
        let prices: PriceBook
        let instant: Date?
        var rows: [Key: Row] = [:]

        public init(prices: PriceBook, at instant: Date? = nil) {
            self.prices = prices
            self.instant = instant
        }

        public mutating func add(_ record: BillingRecord) {
            guard record.status == .completed else { return }
            let when = instant ?? record.startedAt
            let entry =
                record.priceID.flatMap { prices.price(for: $0, at: when) }
                ?? prices.price(
                    for: record.model, at: when)
            let cost = entry.flatMap { try? $0.cost(of: record.usage) }
            let key = Key(
                tenant: record.tenantID, model: record.model, actual: record.cost?.currency ?? "",
                whatIf: cost?.currency ?? "")
            var row =
                rows[key]
                ?? Row(tenantID: key.tenant, model: key.model, actualCurrency: key.actual, whatIfCurrency: key.whatIf)
            row.records += 1
            row.actualCost.saturatingAdd(record.cost?.nanos ?? 0)
            if let cost { row.whatIfCost.saturatingAdd(cost.nanos) } else { row.unpriced += 1 }
            rows[key] = row
        }

        public func finish() -> WhatIfReport {
            WhatIfReport(
                rows: rows.values.sorted {
                    ($0.tenantID, $0.model, $0.actualCurrency, $0.whatIfCurrency)
                        < ($1.tenantID, $1.model, $1.actualCurrency, $1.whatIfCurrency)
                })
        }
    }
}

/// When a pool runs out at the recent rate, and what the period will come to.
public struct PoolForecast: Sendable, Equatable {
    public var used: Int64
    public var limit: Int64
    public var periodStart: Date
    public var periodEnd: Date
    /// Usage per day over the trailing window (in the pool's unit), rounded half up.
    public var ratePerDay: Int64
    /// When `used` reaches `limit` at that rate; nil when the rate is zero or it does not happen before
    /// the period ends. Equal to `now` if the pool is already used up.
    public var runsOutAt: Date?
    /// `used` plus the rate over the rest of the period.
    public var projectedTotal: Int64

    /// `windowUsage`: what was used in the trailing `window` seconds before `now` (the rate's basis).
    public static func project(
        used: Int64, limit: Int64, periodStart: Date, periodEnd: Date, windowUsage: Int64, window: TimeInterval,
        now: Date
    ) -> PoolForecast {
        let seconds = max(1, window)
        // Rates in nano-units per second overflow nothing in 128 bits.
        let perDay = Int64(clamping: (Int128(windowUsage) * 86_400 * 2 + Int128(seconds)) / (Int128(seconds) * 2))
        let left = max(0, periodEnd.timeIntervalSince(now))
        let projected = Int128(used) + Int128(windowUsage) * Int128(left.rounded(.down)) / Int128(seconds)
        var runsOut: Date?
        if used >= limit {
            runsOut = now
        } else if windowUsage > 0 {
            let secondsToEmpty = Double(limit - used) * seconds / Double(windowUsage)
            let at = now.addingTimeInterval(secondsToEmpty)
            if at < periodEnd { runsOut = at }
        }
        return PoolForecast(
            used: used, limit: limit, periodStart: periodStart, periodEnd: periodEnd, ratePerDay: perDay,
            runsOutAt: runsOut, projectedTotal: Int64(clamping: projected))
    }
}
