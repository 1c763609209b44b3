import Foundation

/// Dated prices per model (`policies/prices.yaml`), and dated exchange rates.
///
/// A request is priced with the entry in force when it started: the latest entry whose
/// `effective_from` is not after the start. Dates are RFC 3339 instants, or plain dates taken as
/// midnight in the zone the file states (`timezone:`, default UTC).
public struct PriceBook: Sendable, YAMLDocument {
    public private(set) var entries: [String: [PriceEntry]]
    /// Per currency pair ("CNY/USD"), dated rates in nano-units of the second per unit of the first.
    public private(set) var fx: [String: [(from: Date, rate: Int64)]]

    public init(entries: [String: [PriceEntry]], fx: [String: [(from: Date, rate: Int64)]] = [:]) {
        self.entries = entries.mapValues { $0.sorted { $0.effectiveFrom < $1.effectiveFrom } }
        self.fx = fx.mapValues { $0.sorted { $0.from < $1.from } }
    }

    /// The entry in force at `instant`, or nil if the model has none yet (or is not in the book).
    public func price(for priceID: String, at instant: Date) -> PriceEntry? {
        entries[priceID]?.last { $0.effectiveFrom <= instant }
    }

    /// Converts with the rate in force at `instant`; nil when the book has no such rate (there is no
    /// silent default). Rounds half up to whole nano-units.
    public func convert(_ money: Money, to currency: String, at instant: Date) -> Money? {
        if money.currency == currency { return money }
        guard let rate = fx["\(money.currency)/\(currency)"]?.last(where: { $0.from <= instant })?.rate else {
            return nil
        }
        let converted = (Int128(money.nanos) * Int128(rate) + 500_000_000) / 1_000_000_000
        // An amount beyond 64 bits in the target currency cannot be converted (nor reached by real use).
        guard let nanos = Int64(exactly: converted) else { return nil }
        return Money(nanos: nanos, currency: currency)
    }

    public static func parse(_ root: YAMLField) throws(ConfigError) -> PriceBook {
        _ = try root.mapping(allowed: ["timezone", "prices", "fx"])
        var zone = TimeZone(identifier: "UTC")!
        if let z = root.optional("timezone") {
            let name = try z.string()
            guard let tz = TimeZone(identifier: name) else { throw z.fail("unknown time zone '\(name)'") }
            zone = tz
        }
        var entries: [String: [PriceEntry]] = [:]
        for (priceID, list) in try root.required("prices").mapping() {
            var dated: [PriceEntry] = []
            for field in try list.sequence() {
                _ = try field.mapping(allowed: [
                    "effective_from", "currency", "input", "cached_input", "cache_write", "output", "reasoning",
                    "source",
                ])
                let dateField = try field.required("effective_from")
                let from = try date(dateField, zone: zone)
                guard !dated.contains(where: { $0.effectiveFrom == from }) else {
                    throw dateField.fail("two entries take effect at the same instant")
                }
                let currencyField = try field.required("currency")
                let currency = try currencyField.string()
                guard Money.isCurrencyCode(currency) else {
                    throw currencyField.fail("expected an ISO 4217 code such as USD or CNY")
                }
                dated.append(
                    PriceEntry(
                        id: "\(priceID)@\(iso(from))", effectiveFrom: from, currency: currency,
                        input: try rate(field.required("input")),
                        cachedInput: try field.optional("cached_input").map(rate),
                        cacheWrite: try field.optional("cache_write").map(rate),
                        output: try rate(field.required("output")),
                        reasoning: try field.optional("reasoning").map(rate)))
            }
            entries[priceID] = dated
        }
        var fx: [String: [(from: Date, rate: Int64)]] = [:]
        if let list = root.optional("fx") {
            for field in try list.sequence() {
                _ = try field.mapping(allowed: ["effective_from", "rates", "source"])
                let from = try date(try field.required("effective_from"), zone: zone)
                for (pair, value) in try field.required("rates").mapping() {
                    let currencies = pair.split(separator: "/")
                    guard currencies.count == 2, currencies.allSatisfy({ Money.isCurrencyCode(String($0)) }) else {
                        throw value.fail("expected a pair such as CNY/USD")
                    }
                    fx[pair, default: []].append((from, try rate(value)))
                }
            }
        }
        return PriceBook(entries: entries, fx: fx)
    }

    static func rate(_ field: YAMLField) throws(ConfigError) -> Int64 {
        let text = try field.string()
        guard let nanos = Money.parseNanos(text) else {
            throw field.fail("expected a decimal string such as \"2.50\" (at most 9 decimals)")
        }
        return nanos
    }

    static func date(_ field: YAMLField, zone: TimeZone) throws(ConfigError) -> Date {
        let text = try field.string()
        if text.count == 10 {
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            let parts = text.split(separator: "-").compactMap { Int($0) }
            if parts.count == 3,
                let d = calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
            {
                return d
            }
        } else {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime]
            if let d = formatter.date(from: text) { return d }
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let d = formatter.date(from: text) { return d }
        }
        throw field.fail("expected an RFC 3339 instant or a YYYY-MM-DD date")
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: date)
    }
}
