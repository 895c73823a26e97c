import Foundation
import Testing
import TollgateCore

private func utc(_ text: String) -> Date { Date(iso8601: text)! }

@Suite struct BudgetMathTests {
    let thresholds = [
        BudgetThreshold(percent: 50, action: .alert), BudgetThreshold(percent: 80, action: .alert), BudgetThreshold(percent: 100, action: .suspend),
    ]

    @Test(arguments: [
        (Decimal(499), [Int]()),
        (Decimal(500), [50]),
        (Decimal(799), [50]),
        (Decimal(800), [50, 80]),
        (Decimal(1000), [50, 80, 100]),
        (Decimal(5000), [50, 80, 100]),
    ])
    func thresholdsCrossAtExactlyTheirShareOfTheLimit(measured: Decimal, expected: [Int]) {
        let crossed = BudgetMath.newlyCrossed(thresholds: thresholds, measured: measured, limit: 1000, alreadyFired: [])
        #expect(crossed.map(\.percent) == expected)
    }

    @Test func aThresholdThatFiredDoesNotFireAgain() {
        let crossed = BudgetMath.newlyCrossed(thresholds: thresholds, measured: 1000, limit: 1000, alreadyFired: [50, 80])
        #expect(crossed == [BudgetThreshold(percent: 100, action: .suspend)])
        #expect(BudgetMath.newlyCrossed(thresholds: thresholds, measured: 1000, limit: 1000, alreadyFired: [50, 80, 100]).isEmpty)
    }

    @Test func fractionalCostLimitsCompareExactly() {
        // 0.1 + 0.2 is exactly 0.3 in Decimal; a Double would land just above or below.
        let crossed = BudgetMath.newlyCrossed(
            thresholds: [BudgetThreshold(percent: 100, action: .suspend)], measured: Decimal(string: "0.1")! + Decimal(string: "0.2")!,
            limit: Decimal(string: "0.3")!, alreadyFired: [])
        #expect(crossed.map(\.percent) == [100])
    }

    @Test func forecastProjectsLinearlyToPeriodEnd() throws {
        let period = BillingPeriod.containing(utc("2026-11-15T00:00:00Z"), kind: .monthly)  // November: 30 days
        // 16 November 00:00 is 15 of 30 days: exactly half-way, so 400 used projects to 800.
        let forecast = try #require(BudgetMath.forecast(measured: 400, period: period, now: utc("2026-11-16T00:00:00Z")))
        #expect(forecast == 800)
        #expect(BudgetMath.forecastExceeds(measured: 400, limit: 799, period: period, now: utc("2026-11-16T00:00:00Z")))
        #expect(!BudgetMath.forecastExceeds(measured: 400, limit: 800, period: period, now: utc("2026-11-16T00:00:00Z")))
    }

    @Test func noForecastInTheFirstTenthOfAPeriod() {
        let period = BillingPeriod.containing(utc("2026-11-02T00:00:00Z"), kind: .monthly)
        // Three days of thirty is exactly a tenth: allowed; a second earlier is not.
        #expect(BudgetMath.forecast(measured: 100, period: period, now: utc("2026-11-03T23:59:59Z")) == nil)
        #expect(BudgetMath.forecast(measured: 100, period: period, now: utc("2026-11-04T00:00:00Z")) == 1000)
    }

    @Test func evaluationOnTheLastSecondOfTheMonthBelongsToThatMonth() {
        let budget = BudgetDefinition(name: "b", scope: .all, limit: 1000, thresholds: thresholds)
        let evaluation = BudgetEvaluation(
            budget: budget, now: utc("2026-11-30T23:59:59Z"), measured: 1000, alreadyFired: [50, 80], forecastFired: false)
        #expect(evaluation.period == BillingPeriod(start: utc("2026-11-01T00:00:00Z"), end: utc("2026-12-01T00:00:00Z")))
        #expect(evaluation.crossed.map(\.percent) == [100])
        let nextMonth = BudgetEvaluation(budget: budget, now: utc("2026-12-01T00:00:00Z"), measured: 0, alreadyFired: [], forecastFired: false)
        #expect(nextMonth.period.start == utc("2026-12-01T00:00:00Z"))
        #expect(nextMonth.crossed.isEmpty)
    }

    @Test func aOneOffIncreaseRaisesTheEffectiveLimit() {
        let budget = BudgetDefinition(name: "b", scope: .all, limit: 1000, thresholds: thresholds)
        let evaluation = BudgetEvaluation(
            budget: budget, now: utc("2026-11-20T00:00:00Z"), measured: 1200, increase: 500, alreadyFired: [], forecastFired: true)
        #expect(evaluation.effectiveLimit == 1500)
        #expect(evaluation.crossed.map(\.percent) == [50, 80])
        #expect(evaluation.percent == 80)
    }

    @Test func forecastFiresOncePerPeriodAndNotOnceOverTheLimit() {
        let budget = BudgetDefinition(name: "b", scope: .all, limit: 1000, thresholds: thresholds)
        let now = utc("2026-11-16T00:00:00Z")  // half-way: 600 projects to 1200, 500 to exactly the limit
        #expect(BudgetEvaluation(budget: budget, now: now, measured: 600, alreadyFired: [50], forecastFired: false).forecastExceeded)
        #expect(!BudgetEvaluation(budget: budget, now: now, measured: 500, alreadyFired: [50], forecastFired: false).forecastExceeded)
        #expect(!BudgetEvaluation(budget: budget, now: now, measured: 600, alreadyFired: [50], forecastFired: true).forecastExceeded)
        #expect(!BudgetEvaluation(budget: budget, now: now, measured: 1001, alreadyFired: [50, 80, 100], forecastFired: false).forecastExceeded)
        var quiet = budget
        quiet.forecast = false
        #expect(!BudgetEvaluation(budget: quiet, now: now, measured: 600, alreadyFired: [50], forecastFired: false).forecastExceeded)
    }

    @Test func weeklyAndZonedPeriods() throws {
        let berlin = try #require(TimeZone(identifier: "Europe/Berlin"))
        let budget = BudgetDefinition(name: "b", scope: .all, period: .daily, timeZone: berlin, limit: 1, thresholds: thresholds)
        // 23:30 UTC on 25 November is already 26 November in Berlin (UTC+1).
        #expect(budget.period(at: utc("2026-11-25T23:30:00Z")).start == utc("2026-11-25T23:00:00Z"))
        let weekly = BudgetDefinition(name: "w", scope: .all, period: .weekly, limit: 1, thresholds: thresholds)
        #expect(weekly.period(at: utc("2026-11-29T23:59:59Z")).start == utc("2026-11-23T00:00:00Z"))  // Monday
    }
}

@Suite struct BudgetPolicyTests {
    let json = """
        [{"name": "search-monthly", "scope": "subscription", "target": "team-search-prod", "limit": "1000000",
          "thresholds": [{"percent": 80, "action": "alert"}, {"percent": 100, "action": "suspend"}]},
         {"name": "all-cost", "scope": "all", "metric": "cost", "currency": "EUR", "period": "yearly", "time_zone": "Europe/Berlin",
          "limit": 2500.75, "forecast": false, "thresholds": [{"percent": 90}]}]
        """

    @Test func decodesBudgetsWithDefaults() throws {
        let budgets = try JSONDecoder().decode([BudgetSpec].self, from: Data(json.utf8))
        #expect(budgets.count == 2)
        #expect(budgets[0].metric == .tokens)
        #expect(budgets[0].period == .monthly)
        #expect(budgets[0].limit == 1_000_000)
        #expect(budgets[0].forecast)
        #expect(budgets[1].limit == Decimal(string: "2500.75")!)
        #expect(budgets[1].thresholds == [BudgetThreshold(percent: 90, action: .alert)])
        let definition = try #require(budgets[1].definition)
        #expect(definition.scope == .all)
        #expect(definition.timeZone.identifier == "Europe/Berlin")
        #expect(validate(budgets: budgets, knownSubscriptions: ["team-search-prod"], knownProducts: []).isEmpty)
    }

    @Test func rejectsUnknownKeys() {
        let typo = #"[{"name": "b", "scope": "all", "limit": 1, "treshold": []}]"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([BudgetSpec].self, from: Data(typo.utf8)) }
        let typoInThreshold = #"[{"name": "b", "scope": "all", "limit": 1, "thresholds": [{"percent": 5, "acton": "alert"}]}]"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([BudgetSpec].self, from: Data(typoInThreshold.utf8)) }
    }

    @Test func reportsSemanticProblemsWithPaths() {
        let budgets = [
            BudgetSpec(name: "Bad Name", scope: "subscription", target: "nobody", limit: 10, thresholds: [.init(percent: 0, action: .alert)]),
            BudgetSpec(name: "c", scope: "planet", limit: -1, thresholds: []),
            BudgetSpec(
                name: "c", scope: "all", target: "x", metric: .cost, timeZone: "Mars/Olympus", limit: 5,
                thresholds: [
                    .init(percent: 50, action: .alert), .init(percent: 50, action: .suspend),
                ]),
            BudgetSpec(
                name: "t", scope: "team", limit: Decimal(string: "1.5")!, currency: "USD", thresholds: [.init(percent: 100, action: .suspend)]),
        ]
        let problems = validate(budgets: budgets, knownSubscriptions: ["team-a"], knownProducts: []).map { "\($0.pathText): \($0.message)" }
        #expect(
            problems == [
                "budgets[0].name: must be a slug: lower-case letters, digits, '.', '_' or '-'",
                "budgets[0].target: unknown subscription 'nobody'",
                "budgets[0].thresholds[0].percent: must be between 1 and 1000",
                "budgets[1].scope: must be one of: subscription, product, team, cost_center, all",
                "budgets[1].limit: must be positive",
                "budgets[1].thresholds: a budget needs at least one threshold",
                "budgets[2].name: duplicate budget name 'c'",
                "budgets[2].target: must be absent when scope is 'all'",
                "budgets[2].time_zone: unknown time zone 'Mars/Olympus'; use an IANA name such as Europe/Berlin",
                "budgets[2].currency: is required for a cost budget",
                "budgets[2].thresholds[1].percent: duplicate threshold 50 %",
                "budgets[3].target: is required when scope is 'team'",
                "budgets[3].limit: a token limit must be a whole number",
                "budgets[3].currency: only cost budgets have a currency",
            ])
    }

    @Test func teamTargetsAreCheckedWhenTeamsAreKnown() {
        let budgets = [BudgetSpec(name: "t", scope: "team", target: "search", limit: 10, thresholds: [.init(percent: 100, action: .alert)])]
        #expect(validate(budgets: budgets, knownSubscriptions: [], knownProducts: []).isEmpty)
        #expect(validate(budgets: budgets, knownSubscriptions: [], knownProducts: [], knownTeams: ["ads"]).map(\.pathText) == ["budgets[0].target"])
    }
}
