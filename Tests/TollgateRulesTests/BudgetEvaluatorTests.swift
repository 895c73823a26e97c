import Foundation
import Logging
import PostgresNIO
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateTestSupport

private func evaluator(_ client: PostgresClient, clock: TestClock) async throws -> BudgetEvaluator {
    Fixtures.evaluator(client, location: try await TestDatabase.location(), now: clock.closure)
}

@Suite(.freshDatabase) struct ThresholdsFireOnceTests {
    @Test func eachThresholdFiresOncePerPeriod() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            var budget = Fixtures.hardBudget
            budget.thresholds = [.init(percent: 50, action: .alert), .init(percent: 80, action: .alert)]
            try await PostgresBudgetRepository(client: client).upsert(budget, source: "config", logger: Fixtures.logger)
            let clock = TestClock(utc("2026-11-10T12:00:00Z"))
            let engine = try await evaluator(client, clock: clock)

            try await Fixtures.usage("team-a", tokens: 499, at: utc("2026-11-10T11:00:00Z"), client: client)
            #expect(try await engine.evaluateNow().fired.isEmpty)
            try await Fixtures.usage("team-a", tokens: 101, at: utc("2026-11-10T11:30:00Z"), client: client)  // 600
            #expect(try await engine.evaluateNow().fired.map(\.percent) == [50])
            #expect(try await engine.evaluateNow().fired.isEmpty)  // same use, nothing new
            try await Fixtures.usage("team-a", tokens: 300, at: utc("2026-11-10T11:45:00Z"), client: client)  // 900
            #expect(try await engine.evaluateNow().fired.map(\.percent) == [80])
            #expect(try await engine.evaluateNow().fired.isEmpty)

            #expect(try await Fixtures.messageTypes(client: client) == ["budget.threshold_crossed", "budget.threshold_crossed"])
            #expect(try await Fixtures.audit(client: client) == ["threshold_crossed - rules-engine", "threshold_crossed - rules-engine"])
            #expect(try await Fixtures.state(of: "team-a", client: client).state == "active")

            // Usage from before the period does not count; the next period starts from zero and fires again.
            clock.set(utc("2026-12-01T00:30:00Z"))
            try await Fixtures.usage("team-a", tokens: 500, at: utc("2026-12-01T00:10:00Z"), client: client)
            #expect(try await engine.evaluateNow().fired.map(\.percent) == [50])
        }
    }
}

@Suite(.freshDatabase) struct HardBudgetTests {
    @Test func crossingTheHardLimitSuspendsThroughTheRulesEngine() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil), ("team-b", "search", nil)], client: client)
            try await PostgresBudgetRepository(client: client).upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
            let clock = TestClock(utc("2026-11-30T23:59:59Z"))  // the month's last second
            let engine = try await evaluator(client, clock: clock)
            try await Fixtures.usage("team-a", tokens: 1000, at: utc("2026-11-30T23:10:00Z"), client: client)
            try await Fixtures.usage("team-b", tokens: 5000, at: utc("2026-11-30T23:10:00Z"), client: client)

            let report = try await engine.evaluateNow()
            #expect(report.fired.map(\.percent) == [50, 80, 100])
            #expect(report.suspended == ["team-a"])
            let state = try await Fixtures.state(of: "team-a", client: client)
            #expect(state.state == "suspended")
            #expect(state.actor == "rules-engine")
            #expect(state.reason == "Budget 'team-a-monthly' is exhausted for the current period; access resumes at 2026-12-01T00:00:00.000Z.")
            #expect(try await Fixtures.state(of: "team-b", client: client).state == "active")  // outside the budget's scope
            #expect(
                try await Fixtures.messageTypes(client: client) == [
                    "budget.exceeded", "budget.threshold_crossed", "budget.threshold_crossed", "budget.threshold_crossed", "subscription.suspended",
                ])
            let audit = try await Fixtures.audit(client: client)
            #expect(
                audit == [
                    "threshold_crossed - rules-engine", "threshold_crossed - rules-engine", "exceeded - rules-engine",
                    "suspended team-a rules-engine",
                ])
            // A second pass changes nothing: no second suspension, no second message.
            let again = try await engine.evaluateNow()
            #expect(again.fired.isEmpty && again.suspended.isEmpty)
            #expect(try await Fixtures.messageTypes(client: client).count == 5)

        }
    }

}

@Suite(.freshDatabase) struct AuditTrailTests {
    @Test func auditTrailIsAppendOnly() async throws {
        try await TestDatabase.withClient { client in
            try await client.query(
                "INSERT INTO budget_audit (event, action, actor) VALUES ('suspended', 'suspend', 'admin:test')", logger: Fixtures.logger)
            await #expect(throws: PSQLError.self) {
                try await client.query("UPDATE budget_audit SET actor = 'someone-else'", logger: Fixtures.logger)
            }
            await #expect(throws: PSQLError.self) {
                try await client.query("DELETE FROM budget_audit", logger: Fixtures.logger)
            }
        }
    }
}

@Suite(.freshDatabase) struct RolloverTests {
    @Test func rolloverReenablesOnlyWhatTheRulesEngineSuspended() async throws {
        try await TestDatabase.withClient { client in
            // Three subscriptions of team "search" under one hard team budget.
            try await Fixtures.subscriptions(
                [("s-engine", "search", nil), ("s-admin-later", "search", nil), ("s-admin-before", "search", nil)], client: client)
            let budget = BudgetDefinition(
                name: "search-daily", scope: .team("search"), period: .daily, limit: 100, thresholds: [.init(percent: 100, action: .suspend)],
                forecast: false)
            try await PostgresBudgetRepository(client: client).upsert(budget, source: "config", logger: Fixtures.logger)
            let control = Fixtures.control(client)
            // An administrator suspended one before the budget was crossed.
            try await control.suspend(subscription: "s-admin-before", reason: "security review", actor: "admin:alice", logger: Fixtures.logger)

            let clock = TestClock(utc("2026-11-25T10:00:00Z"))
            let engine = try await evaluator(client, clock: clock)
            try await Fixtures.usage("s-engine", tokens: 120, at: utc("2026-11-25T09:00:00Z"), team: "search", client: client)
            let report = try await engine.evaluateNow()
            #expect(report.suspended.sorted() == ["s-admin-later", "s-engine"])
            #expect(try await Fixtures.state(of: "s-admin-before", client: client).actor == "admin:alice")  // manual suspension respected

            // Later the same day an administrator suspends one of them by hand: it is theirs now.
            try await control.suspend(subscription: "s-admin-later", reason: "abuse report", actor: "admin:bob", logger: Fixtures.logger)

            clock.set(utc("2026-11-25T23:59:59Z"))
            #expect(try await engine.evaluateNow().reactivated.isEmpty)  // still the same day
            clock.set(utc("2026-11-26T00:00:00Z"))
            #expect(try await engine.evaluateNow().reactivated == ["s-engine"])

            #expect(try await Fixtures.state(of: "s-engine", client: client).state == "active")
            let later = try await Fixtures.state(of: "s-admin-later", client: client)
            #expect(later.state == "suspended" && later.actor == "admin:bob")
            let before = try await Fixtures.state(of: "s-admin-before", client: client)
            #expect(before.state == "suspended" && before.actor == "admin:alice" && before.reason == "security review")
            #expect(
                try await Fixtures.audit(client: client) == [
                    "suspended s-admin-before admin:alice",
                    "exceeded - rules-engine",
                    "suspend_skipped s-admin-before rules-engine",
                    "suspended s-admin-later rules-engine",
                    "suspended s-engine rules-engine",
                    "suspended s-admin-later admin:bob",
                    "reactivated s-engine rules-engine",
                ])
            // alice's suspension, the rules engine's two, the rollover; bob only took over a suspended subscription.
            #expect(
                try await Fixtures.messageTypes(client: client).filter { $0.hasPrefix("subscription.") } == [
                    "subscription.reactivated", "subscription.suspended", "subscription.suspended", "subscription.suspended",
                ])
        }
    }
}

@Suite(.freshDatabase) struct ManualResumeTests {
    @Test func resumeWithAOneOffIncreaseRearmsTheHardLimit() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            try await PostgresBudgetRepository(client: client).upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
            let clock = TestClock(utc("2026-11-10T12:00:00Z"))
            let engine = try await evaluator(client, clock: clock)
            let control = Fixtures.control(client)
            try await Fixtures.usage("team-a", tokens: 1100, at: utc("2026-11-10T11:00:00Z"), client: client)
            #expect(try await engine.evaluateNow().suspended == ["team-a"])

            let change = try await control.resume(
                subscription: "team-a", reason: "launch week", actor: "admin:carol", oneOffIncrease: 500, now: clock.now, logger: Fixtures.logger)
            #expect(change.outcome == "changed")
            #expect(change.increasedBudgets == ["team-a-monthly"])
            let resumed = try await Fixtures.state(of: "team-a", client: client)
            #expect(resumed.state == "active" && resumed.actor == "admin:carol")
            // 1100 of 1500: the 100 % threshold is re-armed, 50 % stays fired (550 ≤ 1100), 80 % (1200) re-armed.
            #expect(try await engine.evaluateNow().fired.isEmpty)
            try await Fixtures.usage("team-a", tokens: 400, at: utc("2026-11-10T11:30:00Z"), client: client)  // 1500
            let report = try await engine.evaluateNow()
            #expect(report.fired.map(\.percent) == [80, 100])
            #expect(report.suspended == ["team-a"])
            #expect(try await Fixtures.state(of: "team-a", client: client).actor == "rules-engine")
        }
    }

    @Test func resumeWithoutAHoldCannotIncrease() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("idle", nil, nil)], client: client)
            let control = Fixtures.control(client)
            await #expect(throws: SubscriptionControlError.nothingToIncrease("idle")) {
                try await control.resume(subscription: "idle", reason: "x", actor: "admin:a", oneOffIncrease: 10, logger: Fixtures.logger)
            }
            await #expect(throws: SubscriptionControlError.unknownSubscription("ghost")) {
                try await control.suspend(subscription: "ghost", reason: "x", actor: "admin:a", logger: Fixtures.logger)
            }
        }
    }
}

@Suite(.freshDatabase) struct ForecastTests {
    @Test func forecastAboveTheLimitAlertsOnce() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            var budget = Fixtures.hardBudget
            budget.forecast = true
            try await PostgresBudgetRepository(client: client).upsert(budget, source: "config", logger: Fixtures.logger)
            let clock = TestClock(utc("2026-11-16T00:00:00Z"))  // half of November gone
            let engine = try await evaluator(client, clock: clock)
            try await Fixtures.usage("team-a", tokens: 600, at: utc("2026-11-15T10:00:00Z"), client: client)  // projects to 1200
            #expect(try await engine.evaluateNow().fired.map(\.percent) == [50, 0])
            #expect(try await engine.evaluateNow().fired.isEmpty)
            let bodies = try await client.query(
                "SELECT body FROM webhook_messages WHERE event_type = 'budget.forecast_exceeded'", logger: Fixtures.logger
            ).collect().map { try $0.decode(String.self) }
            #expect(bodies.count == 1)
            #expect(bodies.first?.contains(#""forecast":"1200""#) == true)
        }
    }
}

/// Cost budgets read `priced_usage_hourly`, which the chargeback migrations provide. This suite puts a stand-in table
/// of the same shape in its own database (renaming the real view away if the merged schema has it), so it runs
/// before and after the merge.
@Suite(.freshDatabase) struct CostBudgetTests {
    @Test func costBudgetCountsOnlyItsCurrency() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            let exists =
                try await client.query("SELECT to_regclass('priced_usage_hourly') IS NOT NULL", logger: Fixtures.logger)
                .collect().first?.decode(Bool.self) ?? false
            if exists { try await client.query("ALTER VIEW priced_usage_hourly RENAME TO priced_usage_hourly_real", logger: Fixtures.logger) }
            try await client.query(
                """
                CREATE TABLE priced_usage_hourly (hour_start timestamptz, subscription_id text, product text, team text, cost_center text,
                    backend text, deployment text, model text, cost numeric, currency text)
                """, logger: Fixtures.logger)
            try await client.query(
                """
                INSERT INTO priced_usage_hourly VALUES
                    ('2026-11-10 10:00Z', 'team-a', '', 'search', 'cc-1', 'mock', '', 'gpt-4o', 12.3456789012, 'USD'),
                    ('2026-11-10 11:00Z', 'team-a', '', 'search', 'cc-1', 'mock', '', 'gpt-4o', 7.6543210988, 'USD'),
                    ('2026-11-10 11:00Z', 'team-a', '', 'search', 'cc-1', 'mock', '', 'gpt-4o', 500, 'EUR')
                """, logger: Fixtures.logger)
            let budget = BudgetDefinition(
                name: "usd", scope: .costCenter("cc-1"), metric: .cost, limit: 20, currency: "USD",
                thresholds: [.init(percent: 100, action: .suspend)], forecast: false)
            try await PostgresBudgetRepository(client: client).upsert(budget, source: "config", logger: Fixtures.logger)
            let report = try await evaluator(client, clock: TestClock(utc("2026-11-10T12:00:00Z"))).evaluateNow()
            #expect(report.fired.map(\.percent) == [100])  // 12.3456789012 + 7.6543210988 = exactly 20.0000000000 USD
            let measured = try await client.query("SELECT measured FROM budget_firings WHERE budget = 'usd'", logger: Fixtures.logger)
                .collect().first?.decode(Decimal.self)
            #expect(measured == 20)
        }
    }
}

@Suite(.freshDatabase) struct BudgetStatusViewTests {
    @Test func statusShowsUseLimitPercentAndState() async throws {
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            try await PostgresBudgetRepository(client: client).upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
            // The view evaluates at the database's now(), so this test uses the real clock.
            try await Fixtures.usage("team-a", tokens: 600, at: Date(), client: client)
            func status() async throws -> (Decimal, Decimal, Decimal, String) {
                let rows = try await client.query(
                    "SELECT current_use, effective_limit, percent_used, state FROM reporting.budget_status WHERE budget = 'team-a-monthly'",
                    logger: Fixtures.logger)
                return try #require(try await rows.collect().first).decode((Decimal, Decimal, Decimal, String).self)
            }
            #expect(try await status() == (600, 1000, 60, "ok"))
            let engine = try await evaluator(client, clock: TestClock(Date()))
            try await engine.evaluateNow()
            #expect(try await status() == (600, 1000, 60, "warning"))
            try await Fixtures.usage("team-a", tokens: 400, at: Date(), client: client)
            try await engine.evaluateNow()
            #expect(try await status() == (1000, 1000, 100, "suspended"))
        }
    }
}
