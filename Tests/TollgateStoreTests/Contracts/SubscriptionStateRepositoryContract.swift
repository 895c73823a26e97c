import Foundation
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

/// What every `SubscriptionStateRepository` promises, run on the in-memory and the PostgreSQL implementation.
enum SubscriptionStateRepositoryContract {
    static let logger = TestDatabase.logger
    static let november = BillingPeriod(start: utcDate("2026-11-01T00:00:00Z"), end: utcDate("2026-12-01T00:00:00Z"))
    static let december = BillingPeriod(start: utcDate("2026-12-01T00:00:00Z"), end: utcDate("2027-01-01T00:00:00Z"))

    static func conditionalChangesNeverOverrideSomeoneElse(_ fixture: some RulesContractFixture) async throws {
        let states = fixture.rules.subscriptions
        try await fixture.addSubscription("c-sub", team: nil, product: nil)
        #expect(
            try await states.suspendIfActive("c-sub", reason: "over", actor: "rules-engine", logger: logger)
                == ConditionalStateChange(before: "active", changed: true))
        #expect(
            try await states.state(of: "c-sub", logger: logger)
                == SubscriptionStateRow(id: "c-sub", state: "suspended", actor: "rules-engine", reason: "over"))
        #expect(
            try await states.suspendIfActive("c-sub", reason: "again", actor: "rules-engine", logger: logger)
                == ConditionalStateChange(before: "suspended", changed: false))
        // An administrator takes it over: a resume that only releases the rules engine's own suspensions leaves it alone.
        #expect(try await states.setState("c-sub", to: .suspended, reason: "review", actor: "admin:cy", logger: logger))
        #expect(
            try await states.resumeIfSuspended("c-sub", actor: "rules-engine", onlyIfSetBy: "rules-engine", logger: logger)
                == ConditionalStateChange(before: "suspended", changed: false))
        #expect(try await states.state(of: "c-sub", logger: logger)?.actor == "admin:cy")
        #expect(
            try await states.resumeIfSuspended("c-sub", actor: "admin:cy", onlyIfSetBy: nil, logger: logger)
                == ConditionalStateChange(before: "suspended", changed: true))
        #expect(
            try await states.state(of: "c-sub", logger: logger) == SubscriptionStateRow(id: "c-sub", state: "active", actor: "admin:cy", reason: nil))
        #expect(
            try await states.resumeIfSuspended("c-sub", actor: "admin:cy", onlyIfSetBy: nil, logger: logger)
                == ConditionalStateChange(before: "active", changed: false))
        // No such subscription.
        #expect(try await states.state(of: "c-ghost", logger: logger) == nil)
        #expect(try await states.suspendIfActive("c-ghost", reason: "x", actor: "rules-engine", logger: logger) == nil)
        #expect(try await states.resumeIfSuspended("c-ghost", actor: "rules-engine", onlyIfSetBy: nil, logger: logger) == nil)
        #expect(try await states.setState("c-ghost", to: .suspended, reason: nil, actor: "admin:cy", logger: logger) == false)
    }

    static func holdsGoFromPendingToAppliedToEnded(_ fixture: some RulesContractFixture) async throws {
        let (budgets, states) = (fixture.rules.budgets, fixture.rules.subscriptions)
        try await fixture.addSubscription("h-sub", team: "search", product: nil)
        try await fixture.addSubscription("h-other", team: "ads", product: nil)
        for name in ["h-monthly", "h-yearly"] {
            try await budgets.upsert(
                BudgetDefinition(name: name, scope: .team("search"), limit: 10, thresholds: [.init(percent: 100, action: .suspend)], forecast: false),
                source: "config", logger: logger)
        }
        let covered = try await budgets.transaction(logger: logger) { tx in try await tx.subscriptions(in: .team("search")) }
        #expect(covered == [SubscriptionStateRow(id: "h-sub", state: "active", actor: "config")])
        try await budgets.transaction(logger: logger) { tx in
            try await tx.hold("h-sub", for: "h-monthly", period: november)
            try await tx.hold("h-sub", for: "h-yearly", period: december)
        }
        let instant = utcDate("2026-11-20T00:00:00Z")
        let pending = try await states.pendingHolds(endingAfter: instant, logger: logger)
        #expect(pending.map(\.budget) == ["h-monthly", "h-yearly"])
        #expect(pending.allSatisfy { $0.status == .pending && $0.adapterResult == nil })
        let monthly = BudgetHold.Key(budget: "h-monthly", subscription: "h-sub", periodStart: november.start)
        try await budgets.transaction(logger: logger) { tx in try await tx.noteHoldFailure(monthly, result: "error: timeout") }
        #expect(try await states.pendingHolds(endingAfter: instant, logger: logger).first?.adapterResult == "error: timeout")
        try await budgets.transaction(logger: logger) { tx in try await tx.markHoldApplied(monthly, status: .suspended, result: "changed") }
        // Applied holds are no longer pending; marking again changes nothing.
        #expect(try await states.pendingHolds(endingAfter: instant, logger: logger).map(\.budget) == ["h-yearly"])
        try await budgets.transaction(logger: logger) { tx in try await tx.markHoldApplied(monthly, status: .superseded, result: "refused") }
        #expect(try await states.liveHolds(of: "h-sub", endingAfter: instant, logger: logger).map(\.status) == [.suspended, .pending])

        // At December's start the monthly hold has ended, and the yearly one still holds the subscription.
        let ended = try await states.endedHolds(at: december.start, logger: logger)
        #expect(ended.map(\.hold.budget) == ["h-monthly"])
        #expect(ended.first?.stillHeldElsewhere == true)
        try await budgets.transaction(logger: logger) { tx in
            try await tx.endHold(monthly, status: .superseded, by: "rules-engine", result: "still held by another budget")
        }
        #expect(try await states.endedHolds(at: december.start, logger: logger).isEmpty)
        // A hold ended in a period can be placed again in that period.
        try await budgets.transaction(logger: logger) { tx in try await tx.hold("h-sub", for: "h-monthly", period: november) }
        #expect(try await states.pendingHolds(endingAfter: instant, logger: logger).map(\.budget) == ["h-yearly", "h-monthly"])
        try await budgets.transaction(logger: logger) { tx in
            try await tx.endHolds(of: "h-sub", status: .released, by: "admin:hal", result: "changed")
        }
        #expect(try await states.liveHolds(of: "h-sub", endingAfter: instant, logger: logger).isEmpty)
        #expect(try await states.pendingHolds(endingAfter: instant, logger: logger).isEmpty)
    }
}

@Suite struct InMemorySubscriptionStateRepositoryContractTests {
    @Test func conditionalChangesNeverOverrideSomeoneElse() async throws {
        try await SubscriptionStateRepositoryContract.conditionalChangesNeverOverrideSomeoneElse(MemoryRulesFixture())
    }
    @Test func holdsGoFromPendingToAppliedToEnded() async throws {
        try await SubscriptionStateRepositoryContract.holdsGoFromPendingToAppliedToEnded(MemoryRulesFixture())
    }
}

@Suite(.freshDatabasePerTest) struct PostgresSubscriptionStateRepositoryContractTests {
    @Test func conditionalChangesNeverOverrideSomeoneElse() async throws {
        try await PostgresRulesFixture.with { try await SubscriptionStateRepositoryContract.conditionalChangesNeverOverrideSomeoneElse($0) }
    }
    @Test func holdsGoFromPendingToAppliedToEnded() async throws {
        try await PostgresRulesFixture.with { try await SubscriptionStateRepositoryContract.holdsGoFromPendingToAppliedToEnded($0) }
    }
}
