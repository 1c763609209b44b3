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

    @Test(
        "periods are exactly YYYY-MM or YYYY-MM-DD, four-digit years from 1970 to 9999, no overflow",
        arguments: [
            "9223372036854775807-01", "2026-+1", "1-1-1", "2026-1", "2026-11-1", "02026-11", "+2026-11", "-2026-11",
            " 2026-11", "2026-11 ", "2026-11-", "2026--11", "2026-11-30-1", "2026-00", "2026-11-00", "2026-11-31",
            "2025-02-29", "1969-12", "0001-01-01", "2026/11", "2026-1１", "٢٠٢٦-11", "2026-11-3O", "", "-",
            "10000-01",
        ])
    func strictPeriods(text: String) {
        #expect(CalendarPeriod.parse(text, timeZone: Self.utc) == nil, "\(text)")
    }

    @Test("the edges of the accepted range and leap days parse")
    func periodEdges() throws {
        #expect(
            try #require(CalendarPeriod.parse("1970-01", timeZone: Self.utc)).start == Self.at("1970-01-01T00:00:00Z"))
        let last = try #require(CalendarPeriod.parse("9999-12-31", timeZone: Self.utc))
        #expect(last.kind == .day && last.start == Self.at("9999-12-31T00:00:00Z"))
        #expect(CalendarPeriod.parse("2024-02-29", timeZone: Self.utc)?.kind == .day)
        #expect(CalendarPeriod.parse("2000-02-29", timeZone: Self.utc)?.kind == .day)
        #expect(CalendarPeriod.parse("1900-02-29", timeZone: Self.utc) == nil)
        #expect(CalendarPeriod.parse("2100-02-29", timeZone: Self.utc) == nil)
    }

    @Test(
        "export bounds are strict RFC 3339 or YYYY-MM-DD: nothing rolled over, trailing or out of range",
        arguments: [
            "2026-11-01T24:00:00Z", "2026-02-30T00:00:00Z", "2026-11-01T00:60:00Z", "2026-11-01T00:00:60Z",
            "2026-1-1T00:00:00Z", "2026-11-01T00:00:00Zjunk", "2026-11-01T00:00:00+25:00", "2026-11-01T00:00:00+0800",
            "2026-11-01T00:00:00", "2026-11-01 00:00:00Z", "0001-01-01T00:00:00Z", "-2026-11-01T00:00:00Z",
            "99999-01-01T00:00:00Z", "2026-11-01T00:00:00.Z", "2026-11-01T00:00Z", "2026-11-1", "2026-02-30",
            "9223372036854775807-01-01", "2026-11-01T00:00:00+08", "2026-11-01T0０:00:00Z",
        ])
    func strictInstants(text: String) {
        #expect(CalendarPeriod.instant(text) == nil, "\(text)")
    }

    @Test("RFC 3339 variants that are valid: lowercase t and z, -00:00, any fraction, far offsets")
    func validInstants() {
        let base = Self.at("2026-11-01T00:00:00Z")
        #expect(CalendarPeriod.instant("2026-11-01t00:00:00z") == base)
        #expect(CalendarPeriod.instant("2026-11-01T00:00:00-00:00") == base)
        #expect(CalendarPeriod.instant("2026-10-31T14:30:00-09:30") == base)
        #expect(CalendarPeriod.instant("2026-11-01T23:59:00+23:59") == base)
        #expect(CalendarPeriod.instant("2026-11-01T00:00:00.5Z")!.timeIntervalSince(base) == 0.5)
        #expect(CalendarPeriod.instant("1970-01-01T00:00:00Z") == Date(timeIntervalSince1970: 0))
        #expect(
            CalendarPeriod.instant("2024-02-29T12:00:00Z") == Self.at("2024-02-29T00:00:00Z").addingTimeInterval(43_200)
        )
        #expect(CalendarPeriod.instant("9999-12-31T23:59:59Z") == Date(timeIntervalSince1970: 253_402_300_799))
        #expect(CalendarPeriod.instant("2026-11-01", timeZone: Self.shanghai) == Self.at("2026-10-31T16:00:00Z"))
    }
}
