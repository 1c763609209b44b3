import Foundation

/// Why a bill grows: per bucket (the tenant's own day, week or month), tenant and model, the requests,
/// tokens per request, cached share and cost; and per bucket, tenant and currency, the cost change
/// against the previous bucket split into volume, mix, intensity and price (`docs/reports.md`).
///
/// A request is a record the gateway forwarded (any status but `rejected`); costs and tokens are summed
/// over every record, so the report's totals equal the export's for the same range.
public struct InflationReport: Sendable {
    public struct Row: Sendable, Equatable {
        public var bucket: CalendarPeriod
        public var tenantID: String
        public var model: String
        /// The cost's currency; "" for unpriced records.
        public var currency: String
        public var requests: Int64 = 0
        public var promptTokens: Int64 = 0
        public var cachedTokens: Int64 = 0
        public var completionTokens: Int64 = 0
        public var reasoningTokens: Int64 = 0
        public var cost: Int64 = 0
        /// The same tenant's and model's cost in the previous bucket (nil: no such bucket in the data).
        public var previousCost: Int64?

        /// Prompt and completion tokens per request, in hundredths (rounded half up).
        public var tokensPerRequestHundredths: Int64? {
            guard requests > 0 else { return nil }
            return Self.ratio(promptTokens.saturatingAdding(completionTokens), requests, scale: 100)
        }

        /// Cached prompt tokens over prompt tokens, in ten-thousandths (rounded half up).
        public var cachedShareTenThousandths: Int64? {
            guard promptTokens > 0 else { return nil }
            return Self.ratio(cachedTokens, promptTokens, scale: 10_000)
        }

        static func ratio(_ a: Int64, _ b: Int64, scale: Int64) -> Int64 {
            Int64(clamping: (Int128(a) * Int128(scale) * 2 + Int128(b)) / (Int128(b) * 2))
        }
    }

    /// A bucket's cost change against the previous bucket, for one tenant and currency, in four parts that
    /// sum to it exactly: volume + mix + intensity + price = cost - previousCost.
    public struct Change: Sendable, Equatable {
        public var bucket: CalendarPeriod
        public var tenantID: String
        public var currency: String
        public var requests: Int64
        public var previousRequests: Int64
        public var cost: Int64
        public var previousCost: Int64
        public var volume: Int64
        public var mix: Int64
        public var intensity: Int64
        public var price: Int64
    }

    public var rows: [Row]
    public var changes: [Change]

    /// Builds the report from `records` (those that started in the report's range) and `lookback` (records
    /// from before it, which only give the first bucket its previous bucket).
    public static func build(
        records: [BillingRecord], lookback: [BillingRecord] = [], by kind: CalendarPeriod.Kind,
        timeZone: @escaping (String) -> TimeZone, prices: PriceBook
    ) -> InflationReport {
        var builder = Builder(by: kind, timeZone: timeZone, prices: prices)
        for record in records { builder.add(record, inRange: true) }
        for record in lookback { builder.add(record, inRange: false) }
        return builder.finish()
    }

    /// Adds records one at a time (a ledger streamed page by page), keeping only the sums.
    public struct Builder {
        struct Key: Hashable {
            var start: Date
            var tenant: String
            var model: String
            var currency: String
        }
        struct Group: Hashable {
            var start: Date
            var tenant: String
            var currency: String
        }

        let kind: CalendarPeriod.Kind
        let timeZone: (String) -> TimeZone
        let prices: PriceBook
        var sums: [Key: Row] = [:]
        /// Each row's records repriced at the entries in force at its previous bucket's start.
        var repriced: [Key: Int64] = [:]
        var inRange = Set<Key>()
        /// Buckets (start and tenant) that hold records of the range: records from before the range that
        /// fall in one (the start of a clipped first bucket) are left out, so totals equal the range's.
        var rangeBuckets = Set<String>()

        /// `timeZone` is each tenant's; `prices` resolves the entries in force at the start of a previous
        /// bucket, for the price part of a change.
        public init(by kind: CalendarPeriod.Kind, timeZone: @escaping (String) -> TimeZone, prices: PriceBook) {
            self.kind = kind
            self.timeZone = timeZone
            self.prices = prices
        }

        func previousStart(_ bucket: CalendarPeriod) -> Date {
            CalendarPeriod.containing(bucket.start.addingTimeInterval(-1), kind: kind, timeZone: bucket.timeZone).start
        }

        /// Add every record of the range before any from before it (`inRange: false`).
        public mutating func add(_ record: BillingRecord, inRange: Bool) {
            let bucket = CalendarPeriod.containing(record.startedAt, kind: kind, timeZone: timeZone(record.tenantID))
            let bucketID = "\(bucket.start.timeIntervalSince1970)|\(record.tenantID)"
            if inRange {
                rangeBuckets.insert(bucketID)
            } else if rangeBuckets.contains(bucketID) {
                return
            }
            let key = Key(
                start: bucket.start, tenant: record.tenantID, model: record.model, currency: record.cost?.currency ?? ""
            )
            var row =
                sums[key] ?? Row(bucket: bucket, tenantID: record.tenantID, model: record.model, currency: key.currency)
            if record.status != .rejected { row.requests += 1 }
            row.promptTokens.saturatingAdd(Int64(record.usage.prompt))
            row.cachedTokens.saturatingAdd(Int64(record.usage.cachedPrompt))
            row.completionTokens.saturatingAdd(Int64(record.usage.completion))
            row.reasoningTokens.saturatingAdd(Int64(record.usage.reasoning))
            row.cost.saturatingAdd(record.cost?.nanos ?? 0)
            sums[key] = row
            repriced[key, default: 0].saturatingAdd(
                InflationReport.reprice(record, at: previousStart(bucket), currency: key.currency, prices: prices))
            if inRange { self.inRange.insert(key) }
        }

        public func finish() -> InflationReport {
            var tenantsByStart = Set<String>()
            var groups: [Group: [Key]] = [:]
            for key in sums.keys {
                tenantsByStart.insert("\(key.start.timeIntervalSince1970)|\(key.tenant)")
                groups[Group(start: key.start, tenant: key.tenant, currency: key.currency), default: []].append(key)
            }
            var rows: [Row] = []
            for key in inRange {
                var row = sums[key]!
                let before = Key(
                    start: previousStart(row.bucket), tenant: key.tenant, model: key.model, currency: key.currency)
                let hasPrevious = tenantsByStart.contains("\(before.start.timeIntervalSince1970)|\(key.tenant)")
                row.previousCost = hasPrevious ? (sums[before]?.cost ?? 0) : nil
                rows.append(row)
            }
            rows.sort {
                ($0.bucket.start, $0.tenantID, $0.currency, $0.model)
                    < ($1.bucket.start, $1.tenantID, $1.currency, $1.model)
            }
            var changes: [Change] = []
            for group in Set(inRange.map { Group(start: $0.start, tenant: $0.tenant, currency: $0.currency) }) {
                let current = groups[group] ?? []
                guard let sample = current.first.flatMap({ sums[$0] }) else { continue }
                let prior =
                    groups[Group(start: previousStart(sample.bucket), tenant: group.tenant, currency: group.currency)]
                    ?? []
                guard !prior.isEmpty else { continue }
                changes.append(
                    InflationReport.decompose(
                        bucket: sample.bucket, tenant: group.tenant, currency: group.currency,
                        previous: prior.map { sums[$0]! }, current: current.map { (sums[$0]!, repriced[$0] ?? 0) }))
            }
            changes.sort { ($0.bucket.start, $0.tenantID, $0.currency) < ($1.bucket.start, $1.tenantID, $1.currency) }
            return InflationReport(rows: rows, changes: changes)
        }
    }

    /// The decomposition, in a fixed order of substitution (`docs/reports.md`):
    /// - C0 = previous cost; C1 = C0 × N / N0 (volume: more or fewer requests, same mix and cost each);
    /// - C2 = Σ models n_m × (previous cost per request of m) (mix; a model new this bucket enters at its
    ///   tokens priced by the entries in force at the previous bucket's start);
    /// - C3 = this bucket's records repriced at those entries (intensity: tokens per request);
    /// - C4 = this bucket's cost (price: entries changed).
    /// Each part is the difference of consecutive values, each rounded half up to the nano-unit, so the
    /// parts sum to C4 - C0 exactly.
    static func decompose(
        bucket: CalendarPeriod, tenant: String, currency: String, previous: [Row], current: [(Row, Int64)]
    ) -> Change {
        let c0 = previous.reduce(Int128(0)) { $0 + Int128($1.cost) }
        let n0 = previous.reduce(Int128(0)) { $0 + Int128($1.requests) }
        let n1 = current.reduce(Int128(0)) { $0 + Int128($1.0.requests) }
        let c4 = current.reduce(Int128(0)) { $0 + Int128($1.0.cost) }
        let c1 = n0 > 0 ? roundHalfUp(c0 * n1, n0) : c0
        var c2: Int128 = 0
        var c3: Int128 = 0
        let before = Dictionary(previous.map { ($0.model, $0) }, uniquingKeysWith: { a, _ in a })
        for (row, repriced) in current {
            c3 += Int128(repriced)
            if let old = before[row.model], old.requests > 0 {
                c2 += roundHalfUp(Int128(row.requests) * Int128(old.cost), Int128(old.requests))
            } else {
                c2 += Int128(repriced)
            }
        }
        func clamp(_ v: Int128) -> Int64 { Int64(clamping: v) }
        return Change(
            bucket: bucket, tenantID: tenant, currency: currency, requests: clamp(n1), previousRequests: clamp(n0),
            cost: clamp(c4), previousCost: clamp(c0), volume: clamp(c1 - c0), mix: clamp(c2 - c1),
            intensity: clamp(c3 - c2), price: clamp(c4 - c3))
    }

    /// A record's cost under the entry in force at `instant` for its price id, if that entry is in the
    /// same currency; else its own cost (no price change can be told apart).
    static func reprice(_ record: BillingRecord, at instant: Date, currency: String, prices: PriceBook) -> Int64 {
        let own = record.cost?.nanos ?? 0
        guard let id = record.priceID, let entry = prices.price(for: id, at: instant), entry.currency == currency,
            let cost = try? entry.cost(of: record.usage)
        else { return own }
        return cost.nanos
    }

    static func roundHalfUp(_ numerator: Int128, _ denominator: Int128) -> Int128 {
        let q = numerator / denominator
        let r = numerator % denominator
        if r == 0 { return q }
        // Half away from zero, for either sign of the numerator.
        if numerator >= 0 { return r * 2 >= denominator ? q + 1 : q }
        return -r * 2 >= denominator ? q - 1 : q
    }
}

extension BillingRecord {
    /// The price book id the record was priced under (its `price_entry` before the `@`).
    public var priceID: String? {
        guard let entry = priceEntry, let at = entry.lastIndex(of: "@") else { return priceEntry }
        return String(entry[..<at])
    }
}
