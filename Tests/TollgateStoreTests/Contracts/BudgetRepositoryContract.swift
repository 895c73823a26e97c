import Foundation
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

private struct Boom: Error {}

/// What every `BudgetRepository` promises, run on the in-memory and the PostgreSQL implementation.
enum BudgetRepositoryContract {
    static let logger = TestDatabase.logger
    static let november = BillingPeriod(start: utcDate("2026-11-01T00:00:00Z"), end: utcDate("2026-12-01T00:00:00Z"))

    static func budget(_ name: String, scope: BudgetScope, limit: Decimal = 1000) -> BudgetDefinition {
        BudgetDefinition(
            name: name, scope: scope, limit: limit, thresholds: [.init(percent: 50, action: .alert), .init(percent: 100, action: .suspend)],
            forecast: false)
    }

    static func configuredBudgetsReplaceOnlyConfiguredOnes(_ fixture: some RulesContractFixture) async throws {
        let budgets = fixture.rules.budgets
        try await budgets.upsert(budget("from-admin", scope: .all), source: "admin:gus", logger: logger)
        try await budgets.applyConfigured([budget("b-two", scope: .all), budget("a-one", scope: .team("search"))], logger: logger)
        #expect(try await budgets.all(logger: logger).map(\.name) == ["a-one", "b-two", "from-admin"])
        let one = try #require(try await budgets.all(logger: logger).first)
        #expect(one.scope == .team("search"))
        #expect(one.thresholds == [.init(percent: 50, action: .alert), .init(percent: 100, action: .suspend)])
        try await budgets.applyConfigured([budget("b-two", scope: .all)], logger: logger)
        #expect(try await budgets.all(logger: logger).map(\.name) == ["b-two", "from-admin"])
        try await budgets.remove("from-admin", logger: logger)
        #expect(try await budgets.all(logger: logger).map(\.name) == ["b-two"])
    }

    static func stateMeasuresUseInScopeAndPeriod(_ fixture: some RulesContractFixture) async throws {
        try await fixture.addSubscription("m-search-1", team: "search", product: nil)
        try await fixture.addSubscription("m-search-2", team: "search", product: nil)
        try await fixture.addSubscription("m-other", team: "ads", product: nil)
        try await fixture.recordUsage("m-search-1", tokens: 300, at: utcDate("2026-11-10T10:15:00Z"))
        try await fixture.recordUsage("m-search-2", tokens: 200, at: utcDate("2026-11-30T23:59:59Z"))
        try await fixture.recordUsage("m-search-1", tokens: 7000, at: utcDate("2026-12-01T00:00:00Z"))  // next period
        try await fixture.recordUsage("m-other", tokens: 9000, at: utcDate("2026-11-10T10:15:00Z"))  // another team
        let team = budget("m-team", scope: .team("search"))
        try await fixture.rules.budgets.upsert(team, source: "config", logger: logger)
        let state = try await fixture.rules.budgets.state(of: team, in: november, logger: logger)
        #expect(state == BudgetPeriodState(measured: 500, increase: 0, firedThresholds: [], forecastFired: false))
        let one = budget("m-one", scope: .subscription("m-search-1"))
        try await fixture.rules.budgets.upsert(one, source: "config", logger: logger)
        #expect(try await fixture.rules.budgets.state(of: one, in: november, logger: logger).measured == 300)
    }

    static func aFiringIsRecordedOnceWithItsAudit(_ fixture: some RulesContractFixture) async throws {
        let budgets = fixture.rules.budgets
        let definition = budget("f-budget", scope: .all)
        try await budgets.upsert(definition, source: "config", logger: logger)
        let firing = BudgetFiring(budget: "f-budget", period: november, signal: .threshold, percent: 50, measured: 600, limit: 1000)
        let first = try await budgets.transaction(logger: logger) { tx in
            let recorded = try await tx.recordFiring(firing)
            try await tx.appendAudit(
                BudgetAuditRecord(
                    budget: "f-budget", period: november, event: "threshold_crossed", measured: 600, limit: 1000, thresholdPercent: 50,
                    action: "alert", actor: "rules-engine"))
            return recorded
        }
        #expect(first)
        #expect(try await budgets.transaction(logger: logger) { try await $0.recordFiring(firing) } == false)  // once per period
        let forecast = BudgetFiring(budget: "f-budget", period: november, signal: .forecast, percent: 0, measured: 600, limit: 1000)
        #expect(try await budgets.transaction(logger: logger) { try await $0.recordFiring(forecast) })
        let state = try await budgets.state(of: definition, in: november, logger: logger)
        #expect(state.firedThresholds == [50])
        #expect(state.forecastFired)
        let trail = try await budgets.audit(subscription: nil, budget: "f-budget", limit: 10, logger: logger)
        #expect(trail.map(\.event) == ["threshold_crossed"])
        #expect(trail.first?.thresholdPercent == 50)
        #expect(trail.first?.measured == 600)
    }

    static func aTransactionThatThrowsLeavesNothing(_ fixture: some RulesContractFixture) async throws {
        let budgets = fixture.rules.budgets
        let definition = budget("r-budget", scope: .all)
        try await budgets.upsert(definition, source: "config", logger: logger)
        await #expect(throws: Boom.self) {
            try await budgets.transaction(logger: logger) { tx -> Bool in
                _ = try await tx.recordFiring(
                    BudgetFiring(budget: "r-budget", period: november, signal: .threshold, percent: 50, measured: 600, limit: 1000))
                try await tx.appendAudit(BudgetAuditRecord(budget: "r-budget", event: "threshold_crossed", action: "alert", actor: "rules-engine"))
                try await tx.enqueue(WebhookMessage(id: "msg_rolledback", type: .thresholdCrossed, body: "{}"))
                throw Boom()
            }
        }
        #expect(try await budgets.state(of: definition, in: november, logger: logger).firedThresholds.isEmpty)
        #expect(try await budgets.audit(subscription: nil, budget: "r-budget", limit: 10, logger: logger).isEmpty)
    }

    static func anIncreaseRaisesTheLimitAndRearmsThresholdsAboveUse(_ fixture: some RulesContractFixture) async throws {
        let budgets = fixture.rules.budgets
        try await fixture.addSubscription("i-sub", team: nil, product: nil)
        try await fixture.recordUsage("i-sub", tokens: 1000, at: utcDate("2026-11-10T10:00:00Z"))
        let definition = budget("i-budget", scope: .subscription("i-sub"))
        try await budgets.upsert(definition, source: "config", logger: logger)
        for percent in [50, 100] {
            _ = try await budgets.transaction(logger: logger) { tx in
                try await tx.recordFiring(
                    BudgetFiring(budget: "i-budget", period: november, signal: .threshold, percent: percent, measured: 1000, limit: 1000))
            }
        }
        try await budgets.transaction(logger: logger) { tx in
            try await tx.addAdjustment(budget: "i-budget", periodStart: november.start, amount: 500, actor: "admin:ida", reason: "launch")
            try await tx.rearmThresholds(budget: "i-budget", period: november)
        }
        // 1000 of 1500: 50 % (750) is still reached, 100 % (1500) no longer is.
        let state = try await budgets.state(of: definition, in: november, logger: logger)
        #expect(state == BudgetPeriodState(measured: 1000, increase: 500, firedThresholds: [50], forecastFired: false))
    }

    static func theAuditTrailFiltersAndKeepsOrder(_ fixture: some RulesContractFixture) async throws {
        let budgets = fixture.rules.budgets
        try await fixture.addSubscription("a-one", team: nil, product: nil)
        try await fixture.addSubscription("a-two", team: nil, product: nil)
        try await budgets.transaction(logger: logger) { tx in
            for (subscription, event) in [("a-one", "suspended"), ("a-two", "suspended"), ("a-one", "reactivated")] {
                try await tx.appendAudit(
                    BudgetAuditRecord(subscription: SubscriptionID(subscription), event: event, action: "suspend", actor: "admin:amy", reason: "why"))
            }
        }
        let one = try await budgets.audit(subscription: "a-one", budget: nil, limit: 10, logger: logger)
        #expect(one.map(\.event) == ["suspended", "reactivated"])
        #expect(one.allSatisfy { $0.subscription == "a-one" && $0.actor == "admin:amy" && $0.reason == "why" })
        #expect(try await budgets.audit(subscription: nil, budget: nil, limit: 2, logger: logger).map(\.subscription) == ["a-one", "a-two"])
    }

    static func knownTargetsNameSubscriptionsAndProducts(_ fixture: some RulesContractFixture) async throws {
        try await fixture.addSubscription("k-sub", team: nil, product: "k-product")
        let targets = try await fixture.rules.budgets.knownTargets(logger: logger)
        #expect(targets == BudgetTargets(subscriptions: ["k-sub"], products: ["k-product"]))
    }
}

@Suite struct InMemoryBudgetRepositoryContractTests {
    @Test func configuredBudgetsReplaceOnlyConfiguredOnes() async throws {
        try await BudgetRepositoryContract.configuredBudgetsReplaceOnlyConfiguredOnes(MemoryRulesFixture())
    }
    @Test func stateMeasuresUseInScopeAndPeriod() async throws {
        try await BudgetRepositoryContract.stateMeasuresUseInScopeAndPeriod(MemoryRulesFixture())
    }
    @Test func aFiringIsRecordedOnceWithItsAudit() async throws {
        try await BudgetRepositoryContract.aFiringIsRecordedOnceWithItsAudit(MemoryRulesFixture())
    }
    @Test func aTransactionThatThrowsLeavesNothing() async throws {
        try await BudgetRepositoryContract.aTransactionThatThrowsLeavesNothing(MemoryRulesFixture())
    }
    @Test func anIncreaseRaisesTheLimitAndRearmsThresholdsAboveUse() async throws {
        try await BudgetRepositoryContract.anIncreaseRaisesTheLimitAndRearmsThresholdsAboveUse(MemoryRulesFixture())
    }
    @Test func theAuditTrailFiltersAndKeepsOrder() async throws {
        try await BudgetRepositoryContract.theAuditTrailFiltersAndKeepsOrder(MemoryRulesFixture())
    }
    @Test func knownTargetsNameSubscriptionsAndProducts() async throws {
        try await BudgetRepositoryContract.knownTargetsNameSubscriptionsAndProducts(MemoryRulesFixture())
    }
}

@Suite(.freshDatabasePerTest) struct PostgresBudgetRepositoryContractTests {
    @Test func configuredBudgetsReplaceOnlyConfiguredOnes() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.configuredBudgetsReplaceOnlyConfiguredOnes($0) }
    }
    @Test func stateMeasuresUseInScopeAndPeriod() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.stateMeasuresUseInScopeAndPeriod($0) }
    }
    @Test func aFiringIsRecordedOnceWithItsAudit() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.aFiringIsRecordedOnceWithItsAudit($0) }
    }
    @Test func aTransactionThatThrowsLeavesNothing() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.aTransactionThatThrowsLeavesNothing($0) }
    }
    @Test func anIncreaseRaisesTheLimitAndRearmsThresholdsAboveUse() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.anIncreaseRaisesTheLimitAndRearmsThresholdsAboveUse($0) }
    }
    @Test func theAuditTrailFiltersAndKeepsOrder() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.theAuditTrailFiltersAndKeepsOrder($0) }
    }
    @Test func knownTargetsNameSubscriptionsAndProducts() async throws {
        try await PostgresRulesFixture.with { try await BudgetRepositoryContract.knownTargetsNameSubscriptionsAndProducts($0) }
    }
}
