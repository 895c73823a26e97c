import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateStoreMemory

/// The rules engine on the in-memory repositories, with a clock tests move by hand: no PostgreSQL anywhere.
struct InMemoryRules {
    let clock: TestClock
    let store: InMemoryRulesStore
    let leadership = InMemoryLeaderElection()

    init(at start: Date) {
        let clock = TestClock(start)
        self.clock = clock
        self.store = InMemoryRulesStore(now: clock.closure)
    }

    var suspender: TollgateSuspender { TollgateSuspender(subscriptions: store.subscriptionStates) }

    func evaluator(suspender: (any SubscriptionSuspender)? = nil, configuration: BudgetEvaluatorConfiguration = .init()) -> BudgetEvaluator {
        BudgetEvaluator(
            budgets: store.budgets, subscriptions: store.subscriptionStates, leadership: leadership, suspender: suspender ?? self.suspender,
            configuration: configuration, now: clock.closure, logger: Fixtures.logger)
    }

    var control: SubscriptionControl {
        SubscriptionControl(budgets: store.budgets, subscriptions: store.subscriptionStates, suspender: suspender)
    }

    /// Audit rows as "event subscription actor", oldest first (as `Fixtures.audit` shows PostgreSQL's).
    func audit() async throws -> [String] {
        try await store.budgets.audit(subscription: nil, budget: nil, limit: 1000, logger: Fixtures.logger).map {
            [$0.event, $0.subscription ?? "-", $0.actor].joined(separator: " ")
        }
    }
}

/// A management API that fails its first `failures` calls, then behaves like `inner`.
final class FlakySuspender: SubscriptionSuspender {
    struct Unavailable: Error, CustomStringConvertible {
        var description: String { "management API unavailable" }
    }
    let inner: any SubscriptionSuspender
    private let remaining: Mutex<Int>
    var name: String { "flaky" }

    init(failing failures: Int, then inner: any SubscriptionSuspender) {
        self.inner = inner
        self.remaining = Mutex(failures)
    }

    private func fail() -> Bool {
        remaining.withLock { count in
            guard count > 0 else { return false }
            count -= 1
            return true
        }
    }

    func suspend(_ subscription: SubscriptionID, reason: SuspensionReason, logger: Logger) async throws -> SuspenderOutcome {
        if fail() { throw Unavailable() }
        return try await inner.suspend(subscription, reason: reason, logger: logger)
    }

    func resume(_ subscription: SubscriptionID, reason: SuspensionReason, onlyIfSuspendedByRulesEngine: Bool, logger: Logger) async throws
        -> SuspenderOutcome
    {
        if fail() { throw Unavailable() }
        return try await inner.resume(subscription, reason: reason, onlyIfSuspendedByRulesEngine: onlyIfSuspendedByRulesEngine, logger: logger)
    }
}
