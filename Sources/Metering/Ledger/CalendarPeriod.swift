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

    /// Parses `2026-11` (a month) or `2026-11-30` (a day), in `timeZone`.
    public static func parse(_ text: String, timeZone: TimeZone) -> CalendarPeriod? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ $0 != nil }), text.first?.isNumber == true
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let components = DateComponents(
            year: parts[0], month: parts[1], day: parts.count == 3 ? parts[2] : 1, hour: 12)
        guard components.isValidDate(in: calendar), let noon = calendar.date(from: components) else { return nil }
        return containing(noon, kind: parts.count == 3 ? .day : .month, timeZone: timeZone)
    }

    /// Parses an RFC 3339 instant, or a `YYYY-MM-DD` date taken as midnight in `timeZone`.
    public static func instant(_ text: String, timeZone: TimeZone = TimeZone(identifier: "UTC")!) -> Date? {
        if text.count == 10 {
            return parse(text, timeZone: timeZone).flatMap { $0.kind == .day ? $0.start : nil }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let d = formatter.date(from: text) { return d }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    public var description: String {
        "\(kind.rawValue) [\(BillingExportFormat.timestamp(start)), \(BillingExportFormat.timestamp(end))) "
            + timeZone.identifier
    }
}
