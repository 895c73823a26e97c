import TollgateCore
import TollgateStore

/// Which subscriptions a suspending threshold holds, decided from their state alone.
///
/// Active subscriptions are held. A subscription the rules engine already holds for another budget is held for this one
/// too, so rollover of the other budget does not release it while this one is still exceeded. Any other (suspended by an
/// administrator, cancelled) is left to its owner, and the audit says why.
struct SuspensionPlan: Hashable {
    var hold: [SubscriptionID] = []
    var leave: [SubscriptionStateRow] = []

    init(covering subscriptions: [SubscriptionStateRow]) {
        for subscription in subscriptions {
            if subscription.state == SubscriptionState.active.rawValue || subscription.actor == rulesEngineActor {
                hold.append(subscription.id)
            } else {
                leave.append(subscription)
            }
        }
    }
}

/// What rollover does with a live hold whose period has ended.
enum RolloverDecision: Hashable {
    /// End the hold without touching the subscription, for this reason.
    case supersede(String)
    /// Ask the adapter to re-activate the subscription (if the rules engine still owns its state).
    case resume

    init(_ ended: EndedHold) {
        if ended.stillHeldElsewhere {
            self = .supersede("still held by another budget")
        } else if ended.hold.status == .pending {
            self = .supersede("period ended before the suspension applied")
        } else {
            self = .resume
        }
    }
}

extension SuspenderOutcome {
    /// The outcome of a conditional change in Tollgate's catalog: changed, already there, or refused (someone else owns the state).
    init(_ change: ConditionalStateChange, wanted: SubscriptionState) {
        if change.changed {
            self = .changed
        } else {
            self = change.before == wanted.rawValue ? .alreadyInState : .refused
        }
    }
}
