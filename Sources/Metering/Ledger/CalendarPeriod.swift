import Foundation

/// A calendar period in a time zone: a day, an ISO week (Monday first) or a month, from local midnight
/// to local midnight. Budgets and quotas reset on these boundaries, and usage reports sum over them.
public struct CalendarPeriod: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, CaseIterable {
        case day
        case week
        case month
    }

    public var kind: Kind
    public var start: Date
    public var end: Date
    public var timeZone: TimeZone

    /// The years `parse` and `instant` accept: four digits, from the Unix epoch on.
    public static let years = 1970...9999

    /// The period of `kind` that contains `instant`, in `timeZone`.
    public static func containing(_ instant: Date, kind: Kind, timeZone: TimeZone) -> CalendarPeriod {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = timeZone
        let component: Calendar.Component
        switch kind {
        case .day: component = .day
        case .week: component = .weekOfYear
        case .month: component = .month
        }
        let interval = calendar.dateInterval(of: component, for: instant)!
        return CalendarPeriod(kind: kind, start: interval.start, end: interval.end, timeZone: timeZone)
    }

    /// Parses exactly `YYYY-MM` (a month) or `YYYY-MM-DD` (a day), in `timeZone`: a four-digit year in
    /// `years`, a two-digit month and day, and a date that exists. Anything else (signs, spaces, other
    /// widths, `2026-02-30`) is nil.
    public static func parse(_ text: String, timeZone: TimeZone) -> CalendarPeriod? {
        var scanner = DigitScanner(text)
        guard let year = scanner.number(digits: 4), scanner.skip("-"), let month = scanner.number(digits: 2) else {
            return nil
        }
        var day: Int?
        if !scanner.atEnd {
            guard scanner.skip("-"), let d = scanner.number(digits: 2) else { return nil }
            day = d
        }
        guard scanner.atEnd, isValidDate(year: year, month: month, day: day ?? 1) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let components = DateComponents(year: year, month: month, day: day ?? 1, hour: 12)
        guard let noon = calendar.date(from: components) else { return nil }
        return containing(noon, kind: day == nil ? .month : .day, timeZone: timeZone)
    }

    /// Parses an RFC 3339 instant (`2026-11-01T08:00:00+08:00`, `2026-11-01T00:00:00.250Z`; `T` and `Z`
    /// in either case, offsets up to ±23:59, no leap second), or a `YYYY-MM-DD` date taken as midnight in
    /// `timeZone`. Years are four digits in `years`; dates and times must exist (no `24:00`, no
    /// `02-30`); nothing may follow.
    public static func instant(_ text: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
        if text.utf8.count == 10 {
            return parse(text, timeZone: timeZone).flatMap { $0.kind == .day ? $0.start : nil }
        }
        var s = DigitScanner(text)
        guard let year = s.number(digits: 4), s.skip("-"), let month = s.number(digits: 2), s.skip("-"),
            let day = s.number(digits: 2), s.skip("T") || s.skip("t"), let hour = s.number(digits: 2), s.skip(":"),
            let minute = s.number(digits: 2), s.skip(":"), let second = s.number(digits: 2),
            isValidDate(year: year, month: month, day: day), hour < 24, minute < 60, second < 60
        else { return nil }
        var fraction = 0.0
        if s.skip(".") {
            guard let digits = s.digits(), let value = Double("0." + digits) else { return nil }
            fraction = value
        }
        let offset: Int
        if s.skip("Z") || s.skip("z") {
            offset = 0
        } else {
            let sign: Int
            if s.skip("+") {
                sign = 1
            } else if s.skip("-") {
                sign = -1
            } else {
                return nil
            }
            guard let h = s.number(digits: 2), s.skip(":"), let m = s.number(digits: 2), h < 24, m < 60 else {
                return nil
            }
            offset = sign * (h * 3600 + m * 60)
        }
        guard s.atEnd else { return nil }
        let seconds =
            daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60
            + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// Whether `year-month-day` is a date of the proleptic Gregorian calendar with `year` in `years`.
    static func isValidDate(year: Int, month: Int, day: Int) -> Bool {
        guard years.contains(year), (1...12).contains(month), day >= 1 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= lengths[month - 1]
    }

    /// Days from 1970-01-01 to a valid date (Howard Hinnant's `days_from_civil`).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = y / 400  // y >= 1969: never negative
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    public var description: String {
        "\(kind.rawValue) [\(BillingExportFormat.timestamp(start)), \(BillingExportFormat.timestamp(end))) "
            + timeZone.identifier
    }
}

/// Reads ASCII digits and separators off the front of a string, byte by byte.
private struct DigitScanner {
    private let bytes: [UInt8]
    private var index = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    var atEnd: Bool { index == bytes.count }

    /// Exactly `digits` ASCII digits (so never an overflow, a sign or a space).
    mutating func number(digits: Int) -> Int? {
        guard bytes.count - index >= digits else { return nil }
        var value = 0
        for byte in bytes[index..<index + digits] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        index += digits
        return value
    }

    /// One or more ASCII digits, as text.
    mutating func digits() -> String? {
        let start = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            index += 1
        }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// Consumes `character` (ASCII) if it comes next.
    mutating func skip(_ character: Unicode.Scalar) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
        index += 1
        return true
    }
}
