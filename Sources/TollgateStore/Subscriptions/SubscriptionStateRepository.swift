import Foundation
import Logging
import TollgateCore

/// A subscription's state as the catalog holds it.
public struct SubscriptionStateRow: Sendable, Hashable {
    public var id: SubscriptionID
    /// `active`, `suspended` or `cancelled`.
    public var state: String
    /// Who set the state: `rules-engine`, `admin:<name>`, `config`.
    public var actor: String
    public var reason: String?

    public init(id: SubscriptionID, state: String, actor: String, reason: String? = nil) {
        self.id = id
        self.state = state
        self.actor = actor
        self.reason = reason
    }
}

/// What a conditional state change found and did, decided in one statement so a change made a moment earlier by someone
/// else is never overwritten.
public struct ConditionalStateChange: Sendable, Hashable {
    /// The state before the statement.
    public var before: String
    public var changed: Bool
    public init(before: String, changed: Bool) {
        self.before = before
        self.changed = changed
    }
}

/// A budget's hold on a subscription in one period (`budget_suspensions`): what the rules engine decided to suspend, and
/// whether that took effect.
public struct BudgetHold: Sendable, Hashable {
    public struct Key: Sendable, Hashable {
        public var budget: String
        public var subscription: SubscriptionID
        public var periodStart: Date
        public init(budget: String, subscription: SubscriptionID, periodStart: Date) {
            self.budget = budget
            self.subscription = subscription
            self.periodStart = periodStart
        }
    }
    public enum Status: String, Sendable, Hashable {
        /// Decided, not yet applied through the adapter.
        case pending
        case suspended
        /// Ended by rollover or by hand.
        case released
        /// Ended without being needed (the adapter refused, the period ended first, another budget still holds it, an
        /// administrator took over).
        case superseded
    }
    public var budget: String
    public var subscription: SubscriptionID
    public var period: BillingPeriod
    public var status: Status
    /// The adapter's last answer or error.
    public var adapterResult: String?

    public var key: Key { Key(budget: budget, subscription: subscription, periodStart: period.start) }

    public init(budget: String, subscription: SubscriptionID, period: BillingPeriod, status: Status, adapterResult: String? = nil) {
        self.budget = budget
        self.subscription = subscription
        self.period = period
        self.status = status
        self.adapterResult = adapterResult
    }
}

/// A live hold whose period has ended, and whether another budget still holds the same subscription in a period that has not.
public struct EndedHold: Sendable, Hashable {
    public var hold: BudgetHold
    public var stillHeldElsewhere: Bool
    public init(hold: BudgetHold, stillHeldElsewhere: Bool) {
        self.hold = hold
        self.stillHeldElsewhere = stillHeldElsewhere
    }
}

/// Subscription state as the rules engine changes it (suspend, resume) and the holds budgets place on subscriptions.
public protocol SubscriptionStateRepository: Sendable {
    /// The subscription's state; nil when there is no such subscription.
    func state(of subscription: SubscriptionID, logger: Logger) async throws -> SubscriptionStateRow?
    /// Sets the state unconditionally (an administrator takes ownership). - Returns: false when there is no such subscription.
    func setState(_ subscription: SubscriptionID, to state: SubscriptionState, reason: String?, actor: String, logger: Logger) async throws -> Bool
    /// Suspends the subscription if, and only if, it is active. - Returns: nil when there is no such subscription.
    func suspendIfActive(_ subscription: SubscriptionID, reason: String, actor: String, logger: Logger) async throws -> ConditionalStateChange?
    /// Re-activates the subscription if it is suspended and, when `onlyIfSetBy` is given, its state was set by that actor.
    /// - Returns: nil when there is no such subscription.
    func resumeIfSuspended(_ subscription: SubscriptionID, actor: String, onlyIfSetBy: String?, logger: Logger) async throws
        -> ConditionalStateChange?
    /// Holds still pending whose period ends after `instant`, oldest request first.
    func pendingHolds(endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold]
    /// Live holds (pending or suspended) whose period ended at or before `instant`, by period end.
    func endedHolds(at instant: Date, logger: Logger) async throws -> [EndedHold]
    /// Live holds on `subscription` whose period ends after `instant`, by budget.
    func liveHolds(of subscription: SubscriptionID, endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold]
}
