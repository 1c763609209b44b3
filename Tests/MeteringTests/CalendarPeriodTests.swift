import Foundation
import Metering
import Testing

@Suite("Calendar periods in the tenant's time zone")
struct CalendarPeriodTests {
    static let shanghai = TimeZone(identifier: "Asia/Shanghai")!
    static let utc = TimeZone(identifier: "UTC")!

    static func at(_ text: String) -> Date { CalendarPeriod.instant(text)! }

    @Test("a month in Asia/Shanghai starts at 16:00 UTC on the last day of the month before")
    func shanghaiMonth() throws {
        let november = try #require(CalendarPeriod.parse("2026-11", timeZone: Self.shanghai))
        #expect(november.start == Self.at("2026-10-31T16:00:00Z"))
        #expect(november.end == Self.at("2026-11-30T16:00:00Z"))
        // 2026-11-30T17:00Z is already December in Shanghai, still November in UTC.
        let instant = Self.at("2026-11-30T17:00:00Z")
        #expect(CalendarPeriod.containing(instant, kind: .month, timeZone: Self.shanghai).start == november.end)
        #expect(
            CalendarPeriod.containing(instant, kind: .month, timeZone: Self.utc).start
                == Self.at("2026-11-01T00:00:00Z"))
    }

    @Test("days and ISO weeks (Monday first), and dates that do not exist are refused")
    func daysAndWeeks() throws {
        let day = try #require(CalendarPeriod.parse("2026-11-30", timeZone: Self.shanghai))
        #expect(day.start == Self.at("2026-11-29T16:00:00Z") && day.end == Self.at("2026-11-30T16:00:00Z"))
        let week = CalendarPeriod.containing(Self.at("2026-12-02T12:00:00Z"), kind: .week, timeZone: Self.utc)
        #expect(week.start == Self.at("2026-11-30T00:00:00Z") && week.end == Self.at("2026-12-07T00:00:00Z"))
        #expect(CalendarPeriod.parse("2026-02-30", timeZone: Self.utc) == nil)
        #expect(CalendarPeriod.parse("2026-13", timeZone: Self.utc) == nil)
        #expect(CalendarPeriod.parse("Nov", timeZone: Self.utc) == nil)
    }

    @Test("RFC 3339 and plain dates as export bounds")
    func instants() {
        #expect(CalendarPeriod.instant("2026-11-01") == Self.at("2026-11-01T00:00:00Z"))
        #expect(CalendarPeriod.instant("2026-11-01T08:00:00+08:00") == Self.at("2026-11-01T00:00:00Z"))
        #expect(CalendarPeriod.instant("2026-11-01T00:00:00.250Z")!.timeIntervalSince(Self.at("2026-11-01")) == 0.25)
        #expect(CalendarPeriod.instant("yesterday") == nil)
    }
}
