import Foundation
import Logging
import TollgateCore
import TollgateStore

/// `SubscriptionStateRepository` over `InMemoryRulesStore`'s tables.
public struct InMemorySubscriptionStateRepository: SubscriptionStateRepository {
    let store: InMemoryRulesStore

    public func state(of subscription: SubscriptionID, logger: Logger) async throws -> SubscriptionStateRow? {
        store.read { tables in
            tables.subscriptions[subscription].map { SubscriptionStateRow(id: $0.id, state: $0.state, actor: $0.actor, reason: $0.reason) }
        }
    }

    public func setState(_ subscription: SubscriptionID, to state: SubscriptionState, reason: String?, actor: String, logger: Logger) async throws
        -> Bool
    {
        store.read { tables in
            guard tables.subscriptions[subscription] != nil else { return false }
            tables.subscriptions[subscription]?.state = state.rawValue
            tables.subscriptions[subscription]?.reason = reason
            tables.subscriptions[subscription]?.actor = actor
            return true
        }
    }

    public func suspendIfActive(_ subscription: SubscriptionID, reason: String, actor: String, logger: Logger) async throws
        -> ConditionalStateChange?
    {
        store.read { tables in
            guard let row = tables.subscriptions[subscription] else { return nil }
            guard row.state == SubscriptionState.active.rawValue else { return ConditionalStateChange(before: row.state, changed: false) }
            tables.subscriptions[subscription]?.state = SubscriptionState.suspended.rawValue
            tables.subscriptions[subscription]?.reason = reason
            tables.subscriptions[subscription]?.actor = actor
            return ConditionalStateChange(before: row.state, changed: true)
        }
    }

    public func resumeIfSuspended(_ subscription: SubscriptionID, actor: String, onlyIfSetBy: String?, logger: Logger) async throws
        -> ConditionalStateChange?
    {
        store.read { tables in
            guard let row = tables.subscriptions[subscription] else { return nil }
            guard row.state == SubscriptionState.suspended.rawValue, onlyIfSetBy == nil || row.actor == onlyIfSetBy else {
                return ConditionalStateChange(before: row.state, changed: false)
            }
            tables.subscriptions[subscription]?.state = SubscriptionState.active.rawValue
            tables.subscriptions[subscription]?.reason = nil
            tables.subscriptions[subscription]?.actor = actor
            return ConditionalStateChange(before: row.state, changed: true)
        }
    }

    public func pendingHolds(endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold] {
        store.read { tables in
            tables.holds.values.filter { $0.hold.status == .pending && $0.hold.period.end > instant }.sorted { $0.requested < $1.requested }.map(
                \.hold)
        }
    }

    public func endedHolds(at instant: Date, logger: Logger) async throws -> [EndedHold] {
        store.read { tables in
            let live = tables.holds.values.map(\.hold).filter { $0.status == .pending || $0.status == .suspended }
            return live.filter { $0.period.end <= instant }
                .sorted { ($0.period.end, $0.subscription.rawValue, $0.budget) < ($1.period.end, $1.subscription.rawValue, $1.budget) }
                .map { hold in
                    EndedHold(hold: hold, stillHeldElsewhere: live.contains { $0.subscription == hold.subscription && $0.period.end > instant })
                }
        }
    }

    public func liveHolds(of subscription: SubscriptionID, endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold] {
        store.read { tables in
            tables.holds.values.map(\.hold)
                .filter { $0.subscription == subscription && ($0.status == .pending || $0.status == .suspended) && $0.period.end > instant }
                .sorted { $0.budget < $1.budget }
        }
    }
}
