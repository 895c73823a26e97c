import Foundation
import Testing
import TollgateCore

private func at(_ unixSeconds: Double) -> Date { Date(timeIntervalSince1970: unixSeconds) }

// Unix seconds of UTC instants used below (from `date -u -d … +%s`).
private let oct1 = 1_790_812_800.0  // 2026-10-01T00:00:00Z, a Thursday
private let nov1 = 1_793_491_200.0  // 2026-11-01T00:00:00Z, a Sunday
private let dec1 = 1_796_083_200.0  // 2026-12-01T00:00:00Z

struct BillingPeriodTests {
    @Test func octoberIsHalfOpen() throws {
        let october = try #require(BillingPeriod.month("2026-10"))
        #expect(october.start == at(oct1))
        #expect(october.end == at(nov1))
        #expect(october.contains(at(oct1)))
        #expect(october.contains(at(nov1 - 0.000_001)))  // the last microsecond of October
        #expect(!october.contains(at(nov1)))  // 2026-11-01T00:00:00Z belongs to November
        #expect(!october.contains(at(oct1 - 0.000_001)))
    }

    @Test func adjacentMonthsShareNoInstant() throws {
        let october = try #require(BillingPeriod.month("2026-10"))
        let november = try #require(BillingPeriod.month("2026-11"))
        #expect(october.end == november.start)
        #expect(!(october.contains(at(nov1)) && november.contains(at(nov1))))
        #expect(october.next(kind: .monthly) == november)
    }

    @Test(arguments: ["2026-13", "2026-00", "2026-1", "26-10", "2026-10-01", "abcd-10", "2026/10", "", "2026-"])
    func monthRejects(text: String) {
        #expect(BillingPeriod.month(text) == nil)
    }

    @Test(
        arguments: [
            // (instant, kind, start, end) in Unix seconds, UTC.
            (1_795_996_799.0, PeriodKind.weekly, 1_795_392_000.0, 1_795_996_800.0),  // Sun 2026-11-29T23:59:59Z: week of Mon 2026-11-23
            (1_795_996_800.0, PeriodKind.weekly, 1_795_996_800.0, 1_796_601_600.0),  // Mon 2026-11-30T00:00:00Z starts a week
            (1_767_268_800.0, PeriodKind.weekly, 1_766_966_400.0, 1_767_571_200.0),  // Thu 2026-01-01T12:00Z: week of Mon 2025-12-29
            (1_793_505_600.0, PeriodKind.daily, 1_793_491_200.0, 1_793_577_600.0),  // 2026-11-01T04:00Z
            (1_790_812_800.0, PeriodKind.yearly, 1_767_225_600.0, 1_798_761_600.0),  // 2026
            (1_796_083_199.0, PeriodKind.monthly, 1_793_491_200.0, 1_796_083_200.0),  // 2026-11-30T23:59:59Z
        ] as [(Double, PeriodKind, Double, Double)])
    func containingInUTC(instant: Double, kind: PeriodKind, start: Double, end: Double) {
        let period = BillingPeriod.containing(at(instant), kind: kind)
        #expect(period == BillingPeriod(start: at(start), end: at(end)))
    }

    @Test func monthInBerlinStartsAnHourBeforeUTCMidnight() throws {
        // 2026-10-31T23:30:00Z is already 00:30 on 1 November in Berlin (CET, UTC+1, after the DST change on 25 October).
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        let instant = at(1_793_489_400)
        let period = BillingPeriod.containing(instant, kind: .monthly, timeZone: berlin)
        #expect(period.start == at(1_793_487_600))  // 2026-10-31T23:00:00Z
        #expect(period.end == at(1_796_079_600))  // 2026-11-30T23:00:00Z
        #expect(BillingPeriod.containing(instant, kind: .monthly).start == at(oct1))  // still October in UTC
    }

    @Test func dayWhenNewYorkLeavesDaylightSavingLasts25Hours() throws {
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        let period = BillingPeriod.containing(at(1_793_534_400), kind: .daily, timeZone: newYork)  // 2026-11-01T12:00Z
        #expect(period.start == at(1_793_505_600))  // 00:00 EDT = 04:00Z
        #expect(period.end == at(1_793_595_600))  // 00:00 EST on 2 November = 05:00Z
    }

    @Test func decemberIsFollowedByJanuaryOfTheNextYear() throws {
        let december = try #require(BillingPeriod.month("2026-12"))
        #expect(december.start == at(dec1))
        let january = december.next(kind: .monthly)
        #expect(january.start == at(1_798_761_600))
        #expect(january.monthLabel == "2027-01")
    }

    @Test func describesItselfInRFC3339() throws {
        let october = try #require(BillingPeriod.month("2026-10"))
        #expect(october.description == "[2026-10-01T00:00:00.000Z, 2026-11-01T00:00:00.000Z)")
        #expect(october.monthLabel == "2026-10")
    }

    @Test(arguments: [
        ("2026-11-01T00:00:00Z", 1_793_491_200.0),
        ("2026-11-01T00:00:00.250Z", 1_793_491_200.25),
        ("2026-11-01T01:00:00+01:00", 1_793_491_200.0),
    ])
    func parsesRFC3339(text: String, unixSeconds: Double) throws {
        let date = try #require(Date(iso8601: text))
        #expect(date == at(unixSeconds))
    }

    @Test(arguments: ["2026-11-01", "yesterday", "2026-13-01T00:00:00Z", ""])
    func rejectsWhatIsNotRFC3339(text: String) {
        #expect(Date(iso8601: text) == nil)
    }
}
