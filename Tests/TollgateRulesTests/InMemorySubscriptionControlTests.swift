import Foundation
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateStoreMemory

/// Manual suspension and resumption on the in-memory repositories.
@Suite struct InMemorySubscriptionControlTests {
    @Test func aManualSuspensionTakesOverTheRulesEnginesHold() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        rules.store.recordUsage("team-a", tokens: 1000, at: utc("2026-11-10T11:00:00Z"))
        #expect(try await rules.evaluator().evaluateNow().suspended == ["team-a"])

        let change = try await rules.control.suspend(
            subscription: "team-a", reason: "abuse report", actor: "admin:bob", now: rules.clock.now, logger: Fixtures.logger)
        // Already suspended, and the adapter had nothing to change: no second message.
        #expect(change == SubscriptionChange(subscription: "team-a", state: "suspended", outcome: "already_in_state", increasedBudgets: []))
        #expect(rules.store.subscriptionState("team-a")?.actor == "admin:bob")
        #expect(rules.store.holds().map(\.status) == [.superseded])
        #expect(rules.store.holds().first?.adapterResult == "suspended by hand")
        #expect(rules.store.messageTypes().filter { $0 == "subscription.suspended" }.count == 1)
        #expect(try await rules.audit().last == "suspended team-a admin:bob")
        let history = try await rules.control.history(of: "team-a", logger: Fixtures.logger)
        #expect(history.last?.reason == "abuse report")

        // Rollover leaves an administrator's suspension alone.
        rules.clock.set(utc("2026-12-01T00:00:00Z"))
        #expect(try await rules.evaluator().evaluateNow().reactivated.isEmpty)
        #expect(rules.store.subscriptionState("team-a")?.state == "suspended")
    }

    @Test func aResumeWithAnIncreaseRaisesTheLimitAndRearmsTheHardThreshold() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("team-a")
        try await rules.store.budgets.upsert(Fixtures.hardBudget, source: "config", logger: Fixtures.logger)
        let engine = rules.evaluator()
        rules.store.recordUsage("team-a", tokens: 1100, at: utc("2026-11-10T11:00:00Z"))
        #expect(try await engine.evaluateNow().suspended == ["team-a"])

        let change = try await rules.control.resume(
            subscription: "team-a", reason: "launch week", actor: "admin:carol", oneOffIncrease: 500, now: rules.clock.now, logger: Fixtures.logger)
        #expect(change == SubscriptionChange(subscription: "team-a", state: "active", outcome: "changed", increasedBudgets: ["team-a-monthly"]))
        #expect(rules.store.subscriptionState("team-a")?.actor == "admin:carol")
        #expect(rules.store.holds().map(\.status) == [.released])
        let trail = try await rules.audit()
        #expect(trail.suffix(2) == ["limit_increased team-a admin:carol", "reactivated team-a admin:carol"])
        // 1100 of 1500: 50 % stays fired, 80 % (1200) and 100 % are re-armed.
        #expect(try await engine.evaluateNow().fired.isEmpty)
        rules.store.recordUsage("team-a", tokens: 400, at: utc("2026-11-10T11:30:00Z"))
        let report = try await engine.evaluateNow()
        #expect(report.fired.map(\.percent) == [80, 100])
        #expect(report.suspended == ["team-a"])
    }

    @Test func refusalsAreErrorsWithTheirReason() async throws {
        let rules = InMemoryRules(at: utc("2026-11-10T12:00:00Z"))
        rules.store.addSubscription("idle")
        await #expect(throws: SubscriptionControlError.nothingToIncrease("idle")) {
            try await rules.control.resume(subscription: "idle", reason: "x", actor: "admin:a", oneOffIncrease: 10, logger: Fixtures.logger)
        }
        await #expect(throws: SubscriptionControlError.unknownSubscription("ghost")) {
            try await rules.control.suspend(subscription: "ghost", reason: "x", actor: "admin:a", logger: Fixtures.logger)
        }
        await #expect(throws: SubscriptionControlError.reasonRequired) {
            try await rules.control.suspend(subscription: "idle", reason: "  ", actor: "admin:a", logger: Fixtures.logger)
        }
        await #expect(throws: SubscriptionControlError.increaseMustBePositive) {
            try await rules.control.resume(subscription: "idle", reason: "x", actor: "admin:a", oneOffIncrease: 0, logger: Fixtures.logger)
        }
        #expect(try await rules.audit().isEmpty)
        #expect(rules.store.subscriptionState("idle")?.state == "active")
    }
}
