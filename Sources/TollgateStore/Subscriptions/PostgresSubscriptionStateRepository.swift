import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// `SubscriptionStateRepository` on PostgreSQL: `subscriptions.state` (whose trigger NOTIFYs every gateway's catalog) and
/// `budget_suspensions`.
public struct PostgresSubscriptionStateRepository: SubscriptionStateRepository {
    let client: PostgresClient
    package init(client: PostgresClient) { self.client = client }

    public func state(of subscription: SubscriptionID, logger: Logger) async throws -> SubscriptionStateRow? {
        let rows = try await client.query(
            "SELECT state, state_actor, state_reason FROM subscriptions WHERE id = \(subscription.rawValue)", logger: logger)
        guard let (state, actor, reason) = try await rows.collect().first?.decode((String, String, String?).self) else { return nil }
        return SubscriptionStateRow(id: subscription, state: state, actor: actor, reason: reason)
    }

    public func setState(_ subscription: SubscriptionID, to state: SubscriptionState, reason: String?, actor: String, logger: Logger) async throws
        -> Bool
    {
        try await CatalogStore(client: client).setState(subscription, to: state, reason: reason, actor: actor, logger: logger)
    }

    public func suspendIfActive(_ subscription: SubscriptionID, reason: String, actor: String, logger: Logger) async throws
        -> ConditionalStateChange?
    {
        // The check and the change are one statement, so an administrator's suspension (or a cancellation) made a moment
        // earlier is never overwritten.
        let rows = try await client.query(
            """
            WITH target AS (SELECT id, state FROM subscriptions WHERE id = \(subscription.rawValue) FOR UPDATE),
            changed AS (
                UPDATE subscriptions s SET state = 'suspended', state_reason = \(reason), state_actor = \(actor), updated_at = now()
                FROM target WHERE s.id = target.id AND target.state = 'active' RETURNING s.id)
            SELECT target.state, EXISTS (SELECT 1 FROM changed) FROM target
            """, logger: logger)
        guard let (before, changed) = try await rows.collect().first?.decode((String, Bool).self) else { return nil }
        return ConditionalStateChange(before: before, changed: changed)
    }

    public func resumeIfSuspended(_ subscription: SubscriptionID, actor: String, onlyIfSetBy: String?, logger: Logger) async throws
        -> ConditionalStateChange?
    {
        let rows = try await client.query(
            """
            WITH target AS (SELECT id, state, state_actor FROM subscriptions WHERE id = \(subscription.rawValue) FOR UPDATE),
            changed AS (
                UPDATE subscriptions s SET state = 'active', state_reason = NULL, state_actor = \(actor), updated_at = now()
                FROM target WHERE s.id = target.id AND target.state = 'suspended'
                    AND (\(onlyIfSetBy)::text IS NULL OR target.state_actor = \(onlyIfSetBy)) RETURNING s.id)
            SELECT target.state, EXISTS (SELECT 1 FROM changed) FROM target
            """, logger: logger)
        guard let (before, changed) = try await rows.collect().first?.decode((String, Bool).self) else { return nil }
        return ConditionalStateChange(before: before, changed: changed)
    }

    public func pendingHolds(endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold] {
        let rows = try await client.query(
            """
            SELECT budget, subscription_id, period_start, period_end, adapter_result FROM budget_suspensions
            WHERE status = 'pending' AND period_end > \(instant) ORDER BY requested_at, subscription_id, budget
            """, logger: logger)
        var holds: [BudgetHold] = []
        for try await (budget, id, start, end, result) in rows.decode((String, String, Date, Date, String?).self) {
            holds.append(
                BudgetHold(
                    budget: budget, subscription: SubscriptionID(id), period: BillingPeriod(start: start, end: end), status: .pending,
                    adapterResult: result))
        }
        return holds
    }

    public func endedHolds(at instant: Date, logger: Logger) async throws -> [EndedHold] {
        let rows = try await client.query(
            """
            SELECT s.budget, s.subscription_id, s.period_start, s.period_end, s.status, s.adapter_result,
                   EXISTS (SELECT 1 FROM budget_suspensions o WHERE o.subscription_id = s.subscription_id
                           AND o.status IN ('pending', 'suspended') AND o.period_end > \(instant))
            FROM budget_suspensions s
            WHERE s.status IN ('pending', 'suspended') AND s.period_end <= \(instant)
            ORDER BY s.period_end, s.subscription_id, s.budget
            """, logger: logger)
        var ended: [EndedHold] = []
        for try await (budget, id, start, end, status, result, stillHeld) in rows.decode((String, String, Date, Date, String, String?, Bool).self) {
            let hold = BudgetHold(
                budget: budget, subscription: SubscriptionID(id), period: BillingPeriod(start: start, end: end),
                status: BudgetHold.Status(rawValue: status) ?? .pending, adapterResult: result)
            ended.append(EndedHold(hold: hold, stillHeldElsewhere: stillHeld))
        }
        return ended
    }

    public func liveHolds(of subscription: SubscriptionID, endingAfter instant: Date, logger: Logger) async throws -> [BudgetHold] {
        let rows = try await client.query(
            """
            SELECT budget, period_start, period_end, status, adapter_result FROM budget_suspensions
            WHERE subscription_id = \(subscription.rawValue) AND status IN ('pending', 'suspended') AND period_end > \(instant)
            ORDER BY budget
            """, logger: logger)
        var holds: [BudgetHold] = []
        for try await (budget, start, end, status, result) in rows.decode((String, Date, Date, String, String?).self) {
            holds.append(
                BudgetHold(
                    budget: budget, subscription: subscription, period: BillingPeriod(start: start, end: end),
                    status: BudgetHold.Status(rawValue: status) ?? .pending, adapterResult: result))
        }
        return holds
    }
}

extension PostgresDatabase {
    /// Subscription state changes and budget holds.
    public var subscriptionStates: PostgresSubscriptionStateRepository { PostgresSubscriptionStateRepository(client: client) }
}
