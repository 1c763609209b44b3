/// An exact amount of one currency, in nano-units (10⁻⁹ of the currency's main unit).
///
/// Never floating point: amounts are integers, parsed from and printed as decimal strings. Nine
/// decimals are enough for the smallest real per-token price (a fraction of a micro-yuan) and leave
/// Int64 room for 9.2 billion units of currency in one amount.
public struct Money: Sendable, Equatable, Hashable, CustomStringConvertible {
    public static let scale: Int64 = 1_000_000_000
    public static let decimals = 9

    public var nanos: Int64
    /// ISO 4217 code.
    public var currency: String

    public init(nanos: Int64, currency: String) {
        self.nanos = nanos
        self.currency = currency
    }

    public static func zero(_ currency: String) -> Money { Money(nanos: 0, currency: currency) }

    /// Whether `code` has the shape of an ISO 4217 currency code: three capital ASCII letters.
    public static func isCurrencyCode(_ code: String) -> Bool {
        code.utf8.count == 3 && code.utf8.allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }
    }

    /// Parses a non-negative decimal string ("2.50", "0.0008", "12") exactly; nil if it has more than
    /// nine decimals or is not a plain decimal.
    public static func parseNanos(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholePart = parts.first, !wholePart.isEmpty, wholePart.allSatisfy(\.isASCIIDigit),
            let whole = Int64(wholePart)
        else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            let f = parts[1]
            guard !f.isEmpty, f.count <= decimals, f.allSatisfy(\.isASCIIDigit), let v = Int64(f) else { return nil }
            fraction = v
            for _ in f.count..<decimals { fraction *= 10 }
        }
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: scale)
        guard !overflow else { return nil }
        return scaled + fraction
    }

    /// The amount as a decimal string with all nine decimals ("0.000002500").
    public var decimalString: String {
        let sign = nanos < 0 ? "-" : ""
        let magnitude = nanos.magnitude
        let whole = magnitude / UInt64(Self.scale)
        let fraction = String(magnitude % UInt64(Self.scale))
        return sign + String(whole) + "." + String(repeating: "0", count: Self.decimals - fraction.count) + fraction
    }

    public var description: String { decimalString + " " + currency }

    /// The amount with trailing zeros dropped, keeping at least two decimals ("3.50", "0.0008").
    public var shortDecimalString: String {
        var text = decimalString
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."), text.distance(from: dot, to: text.endIndex) > 3 {
            text.removeLast()
        }
        return text
    }

    /// The sum, or nil when the currencies differ or it does not fit in 64 bits: a sum of money is
    /// checked, never a trap.
    public func adding(_ other: Money) -> Money? {
        guard currency == other.currency else { return nil }
        let (sum, overflow) = nanos.addingReportingOverflow(other.nanos)
        return overflow ? nil : Money(nanos: sum, currency: currency)
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
