import Foundation
import Testing
import TollgateCore
import TollgateStore

@testable import TollgateRules

/// The rules engine's pure decisions, taken out of the code that reads and writes the store.
@Suite struct RulesDecisionTests {
    @Test func aSuspendingThresholdHoldsActiveAndEngineHeldSubscriptionsOnly() {
        let plan = SuspensionPlan(covering: [
            SubscriptionStateRow(id: "active", state: "active", actor: "config"),
            SubscriptionStateRow(id: "engine", state: "suspended", actor: "rules-engine"),
            SubscriptionStateRow(id: "admin", state: "suspended", actor: "admin:ann"),
            SubscriptionStateRow(id: "gone", state: "cancelled", actor: "config"),
        ])
        #expect(plan.hold == ["active", "engine"])
        #expect(plan.leave.map(\.id) == ["admin", "gone"])
    }

    @Test(arguments: [
        (BudgetHold.Status.suspended, false, RolloverDecision.resume),
        (.suspended, true, .supersede("still held by another budget")),
        (.pending, false, .supersede("period ended before the suspension applied")),
        (.pending, true, .supersede("still held by another budget")),
    ])
    func rolloverResumesOnlyAnAppliedHoldNoOtherBudgetKeeps(status: BudgetHold.Status, elsewhere: Bool, expected: RolloverDecision) {
        let hold = BudgetHold(
            budget: "b", subscription: "s", period: BillingPeriod(start: utc("2026-11-01T00:00:00Z"), end: utc("2026-12-01T00:00:00Z")),
            status: status)
        #expect(RolloverDecision(EndedHold(hold: hold, stillHeldElsewhere: elsewhere)) == expected)
    }

    @Test(arguments: [
        (ConditionalStateChange(before: "active", changed: true), SubscriptionState.suspended, SuspenderOutcome.changed),
        (ConditionalStateChange(before: "suspended", changed: false), .suspended, .alreadyInState),
        (ConditionalStateChange(before: "cancelled", changed: false), .suspended, .refused),
        (ConditionalStateChange(before: "active", changed: false), .active, .alreadyInState),
        (ConditionalStateChange(before: "suspended", changed: false), .active, .refused),
    ])
    func aConditionalChangeMapsToTheAdaptersOutcome(change: ConditionalStateChange, wanted: SubscriptionState, expected: SuspenderOutcome) {
        #expect(SuspenderOutcome(change, wanted: wanted) == expected)
    }

    @Test func anAttemptsResultDecidesDoneRetryOrGiveUp() {
        let retry = RetrySchedule(initial: .seconds(5), factor: 4, maximum: .seconds(3600), giveUpAfter: .seconds(3600))
        let delivered = WebhookDispatcher.decide(.delivered(status: 204), attempt: 1, elapsed: .zero, retry: retry)
        #expect(delivered.status == 204 && delivered.error == nil && delivered.outcome == .delivered)
        let gone = WebhookDispatcher.decide(.gone(status: 410), attempt: 3, elapsed: .zero, retry: retry)
        #expect(gone.outcome == .endpointGone(reason: "receiver answered 410 Gone"))
        let busy = WebhookDispatcher.decide(
            .failed(status: 503, error: "receiver answered 503", retryable: true), attempt: 2, elapsed: .seconds(5), retry: retry)
        #expect(busy.status == 503 && busy.error == "receiver answered 503" && busy.outcome == .retry(after: .seconds(20)))
        let late = WebhookDispatcher.decide(.failed(status: 503, error: "e", retryable: true), attempt: 2, elapsed: .seconds(3590), retry: retry)
        #expect(late.outcome == .failed)
        let refused = WebhookDispatcher.decide(
            .failed(status: nil, error: "private address", retryable: false), attempt: 1, elapsed: .zero, retry: retry)
        #expect(refused.outcome == .failed && refused.error == "private address")
    }
}
