import Foundation
import Synchronization
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateStoreMemory

/// The evaluator's decisions on the in-memory repositories: thresholds, suspension, retries, rollover, forecast, and
/// leadership, without PostgreSQL.
@Suite struct InMemoryBudgetEvaluatorTests {
    @Test func thresholdsFireOncePerPeriodWithTheirAuditAndMessages() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a", team: "search")
        var budget = Fixtures.hardBudget
        budget.thresholds = [.init(percent: 50, action: .alert), .init(percent: 80, action: .alert)]
        try await rules.store.budgets.upsert(budget, source: "config", logger: Fixtures.logger)
        let engine = rules.evaluator()

        rules.store.recordUsage("team-a", tokens: 499, at: utc("2026-11-10T11:00:00Z"))
        #expect(try await engine.evaluateNow().fired.isEmpty)
        rules.store.recordUsage("team-a", tokens: 101, at: utc("2026-11-10T11:30:00Z"))  // 600
        #expect(try await engine.evaluateNow().fired.map(\.percent) == [50])
        #expect(try await engine.evaluateNow().fired.isEmpty)
        rules.store.recordUsage("team-a", tokens: 200, at: utc("2026-11-10T11:45:00Z"))  // 800
        #expect(try await engine.evaluateNow().fired.map(\.percent) == [80])
        #expect(rules.store.messageTypes() == ["budget.threshold_crossed", "budget.threshold_crossed"])
        #expect(try await rules.audit() == ["threshold_crossed - rules-engine", "threshold_crossed - rules-engine"])
        #expect(rules.store.subscriptionState("team-a")?.state == "active")

        // The next period starts from zero and fires again.
        rules.clock.set(utc("2026-12-01T00:30:00Z"))
        rules.store.recordUsage("team-a", tokens: 500, at: utc("2026-12-01T00:10:00Z"))
        #expect(try await engine.evaluateNow().fired.map(\.percent) == [50])
    }

    @Test func crossingTheHardLimitSuspendsOnlyTheBudgetsScope() async throws {
        let rules = InMemoryRules(at: utc("2026-11-30T23:59:59Z"))  // the month's last second
        rules.store.addSubscription("team-a", team: "search")
        rules.store.addSubscription("team-b", team: "search")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        let engine = rules.evaluator()
        rules.store.recordUsage("team-a", tokens: 1000, at: utc("2026-11-30T23:10:00Z"))
        rules.store.recordUsage("team-b", tokens: 5000, at: utc("2026-11-30T23:10:00Z"))

        let report = try await engine.evaluateNow()
        #expect(report.fired.map(\.percent) == [50, 80, 100])
        #expect(report.suspended == ["team-a"])
        let state = try #require(rules.store.subscriptionState("team-a"))
        #expect(state.state == "suspended" && state.actor == "rules-engine")
        #expect(state.reason == "Budget 'team-a-monthly' is exhausted for the current period; access resumes at 2026-12-01T00:00:00.000Z.")
        #expect(rules.store.subscriptionState("team-b")?.state == "active")
        #expect(
            rules.store.messageTypes() == [
                "budget.exceeded", "budget.threshold_crossed", "budget.threshold_crossed", "budget.threshold_crossed", "subscription.suspended",
            ])
        #expect(
            try await rules.audit() == [
                "threshold_crossed - rules-engine", "threshold_crossed - rules-engine", "exceeded - rules-engine", "suspended team-a rules-engine",
            ])
        let suspended = try #require(rules.store.messages().first { $0.type == .suspended })
        #expect(suspended.body.contains(#""resets_at":"2026-12-01T00:00:00.000Z""#))
        let again = try await engine.evaluateNow()
        #expect(again.fired.isEmpty && again.suspended.isEmpty)
        #expect(rules.store.messageTypes().count == 5)
    }

    @Test func aSubscriptionAnAdministratorSuspendedIsLeftToThem() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a", state: .suspended, actor: "admin:alice")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        rules.store.recordUsage("team-a", tokens: 1000, at: utc("2026-11-10T11:00:00Z"))
        let report = try await rules.evaluator().evaluateNow()
        #expect(report.suspended.isEmpty)
        #expect(rules.store.holds().isEmpty)
        #expect(try await rules.audit().last == "suspend_skipped team-a rules-engine")
        #expect(rules.store.subscriptionState("team-a")?.actor == "admin:alice")
    }

    @Test func aFailedSuspensionIsAuditedOnceAndRetriedNextPass() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        rules.store.recordUsage("team-a", tokens: 1000, at: utc("2026-11-10T11:00:00Z"))
        let engine = rules.evaluator(suspender: FlakySuspender(failing: 2, then: rules.suspender))

        #expect(try await engine.evaluateNow().suspended.isEmpty)
        #expect(try await engine.evaluateNow().suspended.isEmpty)
        #expect(rules.store.holds().map(\.status) == [.pending])
        #expect(rules.store.holds().first?.adapterResult == "error: management API unavailable")
        #expect(try await engine.evaluateNow().suspended == ["team-a"])
        #expect(
            try await rules.audit().filter { $0.hasPrefix("suspend") } == ["suspend_failed team-a rules-engine", "suspended team-a rules-engine"])
        #expect(rules.store.holds().map(\.status) == [.suspended])
    }

    @Test func rolloverReenablesOnlyWhatTheRulesEngineSuspended() async throws {
        let rules = InMemoryRules(at: utc("2026-11-25T10:00:00Z"))
        for id in ["s-engine", "s-admin-later", "s-admin-before"] { rules.store.addSubscription(SubscriptionID(id), team: "search") }
        let budget = BudgetDefinition(
            name: "search-daily", scope: .team("search"), period: .daily, limit: 100, thresholds: [.init(percent: 100, action: .suspend)],
            forecast: false)
        try await rules.store.budgets.upsert(budget, source: "config", logger: Fixtures.logger)
        try await rules.control.suspend(subscription: "s-admin-before", reason: "security review", actor: "admin:alice", logger: Fixtures.logger)
        let engine = rules.evaluator()
        rules.store.recordUsage("s-engine", tokens: 120, at: utc("2026-11-25T09:00:00Z"))
        #expect(try await engine.evaluateNow().suspended.sorted() == ["s-admin-later", "s-engine"])
        try await rules.control.suspend(subscription: "s-admin-later", reason: "abuse report", actor: "admin:bob", logger: Fixtures.logger)

        rules.clock.set(utc("2026-11-25T23:59:59Z"))
        #expect(try await engine.evaluateNow().reactivated.isEmpty)  // still the same day
        rules.clock.set(utc("2026-11-26T00:00:00Z"))
        #expect(try await engine.evaluateNow().reactivated == ["s-engine"])
        #expect(rules.store.subscriptionState("s-engine")?.state == "active")
        #expect(rules.store.subscriptionState("s-admin-later")?.actor == "admin:bob")
        #expect(rules.store.subscriptionState("s-admin-before")?.actor == "admin:alice")
        #expect(rules.store.messageTypes().filter { $0 == "subscription.reactivated" }.count == 1)
        #expect(try await engine.evaluateNow().reactivated.isEmpty)
    }

    @Test func aSubscriptionHeldByAnotherBudgetStaysSuspendedAtRollover() async throws {
        let rules = InMemoryRules(at: utc("2026-11-25T10:00:00Z"))
        rules.store.addSubscription("team-a", team: "search")
        let daily = BudgetDefinition(
            name: "a-daily", scope: .subscription("team-a"), period: .daily, limit: 100, thresholds: [.init(percent: 100, action: .suspend)],
            forecast: false)
        try await rules.store.budgets.upsert(daily, source: "config", logger: Fixtures.logger)
        var monthly = Fixtures.hardBudget
        monthly.limit = 100
        try await rules.store.budgets.upsert(monthly, source: "config", logger: Fixtures.logger)
        rules.store.recordUsage("team-a", tokens: 150, at: utc("2026-11-25T09:00:00Z"))
        let engine = rules.evaluator()
        #expect(try await engine.evaluateNow().suspended == ["team-a"])
        rules.clock.set(utc("2026-11-26T00:00:00Z"))
        #expect(try await engine.evaluateNow().reactivated.isEmpty)
        #expect(rules.store.subscriptionState("team-a")?.state == "suspended")
        #expect(rules.store.holds().first { $0.budget == "a-daily" }?.adapterResult == "still held by another budget")
    }

    @Test func aForecastAboveTheLimitAlertsOnce() async throws {
        let rules = InMemoryRules(at: utc("2026-11-16T00:00:00Z"))  // half of November gone
        rules.store.addSubscription("team-a")
        var budget = Fixtures.hardBudget
        budget.forecast = true
        try await rules.store.budgets.upsert(budget, source: "config", logger: Fixtures.logger)
        rules.store.recordUsage("team-a", tokens: 600, at: utc("2026-11-15T10:00:00Z"))  // projects to 1200
        let engine = rules.evaluator()
        #expect(try await engine.evaluateNow().fired.map(\.percent) == [50, 0])
        #expect(try await engine.evaluateNow().fired.isEmpty)
        let forecasts = rules.store.messages().filter { $0.type == .forecastExceeded }
        #expect(forecasts.count == 1)
        #expect(forecasts.first?.body.contains(#""forecast":"1200""#) == true)
    }

    @Test func theLeaderEvaluatesOnANotificationAndStepsDownWhenItsSessionIsCut() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        let configuration = BudgetEvaluatorConfiguration(
            sweepInterval: .seconds(60), leaderRetryInterval: .milliseconds(300), heartbeatInterval: .milliseconds(50))
        let first = rules.evaluator(configuration: configuration)
        let second = rules.evaluator(configuration: configuration)
        try await Fixtures.running({
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await first.run() }
                group.addTask { try await second.run() }
                try await group.waitForAll()
            }
        }) { () async throws in
            #expect(try await Fixtures.eventually { first.isLeader != second.isLeader })
            try await Task.sleep(for: .milliseconds(50))  // the first sweep has run
            rules.store.recordUsage("team-a", tokens: 1000, at: utc("2026-11-10T11:00:00Z"))
            // The sweep interval is a minute: only the notification can make this prompt.
            rules.leadership.post(.usage)
            #expect(try await Fixtures.eventually(timeout: .seconds(20)) { rules.store.subscriptionState("team-a")?.state == "suspended" })

            let leader = first.isLeader ? first : second
            rules.leadership.cutSession(key: configuration.leaderLockKey)
            // It steps down at once (a retry comes only after 300 ms), and then one instance leads again.
            #expect(try await Fixtures.eventually(timeout: .milliseconds(250)) { !leader.isLeader })
            #expect(try await Fixtures.eventually { first.isLeader != second.isLeader })
        }
    }
}
