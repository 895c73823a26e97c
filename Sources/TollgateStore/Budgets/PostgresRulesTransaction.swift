import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// `RulesTransaction` on the connection of one PostgreSQL transaction.
struct PostgresRulesTransaction: RulesTransaction {
    let connection: PostgresConnection
    let logger: Logger

    func recordFiring(_ firing: BudgetFiring) async throws -> Bool {
        let inserted = try await connection.query(
            """
            INSERT INTO budget_firings (budget, period_start, signal, percent, measured, limit_amount)
            VALUES (\(firing.budget), \(firing.period.start), \(firing.signal.rawValue), \(firing.percent), \(firing.measured), \(firing.limit))
            ON CONFLICT DO NOTHING RETURNING 1
            """, logger: logger
        ).collect()
        return !inserted.isEmpty
    }

    func appendAudit(_ e: BudgetAuditRecord) async throws {
        try await connection.query(
            """
            INSERT INTO budget_audit (budget, subscription_id, period_start, period_end, event, measured, limit_amount, threshold_percent,
                                      action, adapter, adapter_result, actor, reason)
            VALUES (\(e.budget), \(e.subscription?.rawValue), \(e.period?.start), \(e.period?.end), \(e.event), \(e.measured), \(e.limit),
                    \(e.thresholdPercent), \(e.action), \(e.adapter), \(e.adapterResult), \(e.actor), \(e.reason))
            """, logger: logger)
    }

    @discardableResult
    func enqueue(_ message: WebhookMessage) async throws -> Int {
        try await PostgresWebhookRepository.enqueue(message, on: connection, logger: logger)
    }

    func subscriptions(in scope: BudgetScope) async throws -> [SubscriptionStateRow] {
        let rows = try await connection.query(
            """
            SELECT id, state, state_actor FROM subscriptions
            WHERE \(scope.kind) = 'all'
               OR (\(scope.kind) = 'subscription' AND id = \(scope.target))
               OR (\(scope.kind) = 'product' AND product = \(scope.target))
               OR (\(scope.kind) = 'team' AND team = \(scope.target))
               OR (\(scope.kind) = 'cost_center' AND cost_center = \(scope.target))
            ORDER BY id
            """, logger: logger)
        var result: [SubscriptionStateRow] = []
        for try await (id, state, actor) in rows.decode((String, String, String).self) {
            result.append(SubscriptionStateRow(id: SubscriptionID(id), state: state, actor: actor))
        }
        return result
    }

    func hold(_ subscription: SubscriptionID, for budget: String, period: BillingPeriod) async throws {
        try await connection.query(
            """
            INSERT INTO budget_suspensions (budget, subscription_id, period_start, period_end)
            VALUES (\(budget), \(subscription.rawValue), \(period.start), \(period.end))
            ON CONFLICT (budget, subscription_id, period_start) DO UPDATE SET status = 'pending', requested_at = now(),
                suspended_at = NULL, released_at = NULL, released_by = NULL, adapter_result = NULL
            WHERE budget_suspensions.status IN ('released', 'superseded')
            """, logger: logger)
    }

    func noteHoldFailure(_ hold: BudgetHold.Key, result: String) async throws {
        try await connection.query(
            """
            UPDATE budget_suspensions SET adapter_result = \(result)
            WHERE budget = \(hold.budget) AND subscription_id = \(hold.subscription.rawValue) AND period_start = \(hold.periodStart)
            """, logger: logger)
    }

    func markHoldApplied(_ hold: BudgetHold.Key, status: BudgetHold.Status, result: String) async throws {
        try await connection.query(
            """
            UPDATE budget_suspensions SET status = \(status.rawValue), suspended_at = now(), adapter_result = \(result)
            WHERE budget = \(hold.budget) AND subscription_id = \(hold.subscription.rawValue) AND period_start = \(hold.periodStart)
              AND status = 'pending'
            """, logger: logger)
    }

    func endHold(_ hold: BudgetHold.Key, status: BudgetHold.Status, by actor: String, result: String) async throws {
        try await connection.query(
            """
            UPDATE budget_suspensions SET status = \(status.rawValue), released_at = now(), released_by = \(actor), adapter_result = \(result)
            WHERE budget = \(hold.budget) AND subscription_id = \(hold.subscription.rawValue) AND period_start = \(hold.periodStart)
            """, logger: logger)
    }

    func endHolds(of subscription: SubscriptionID, status: BudgetHold.Status, by actor: String, result: String) async throws {
        try await connection.query(
            """
            UPDATE budget_suspensions SET status = \(status.rawValue), released_at = now(), released_by = \(actor), adapter_result = \(result)
            WHERE subscription_id = \(subscription.rawValue) AND status IN ('pending', 'suspended')
            """, logger: logger)
    }

    func addAdjustment(budget: String, periodStart: Date, amount: Decimal, actor: String, reason: String) async throws {
        try await connection.query(
            """
            INSERT INTO budget_adjustments (budget, period_start, amount, actor, reason)
            VALUES (\(budget), \(periodStart), \(amount), \(actor), \(reason))
            """, logger: logger)
    }

    func rearmThresholds(budget: String, period: BillingPeriod) async throws {
        try await connection.query(
            """
            WITH b AS (
                SELECT b.name, b.limit_amount + coalesce((SELECT sum(a.amount) FROM budget_adjustments a
                                                         WHERE a.budget = b.name AND a.period_start = \(period.start)), 0) AS effective,
                       tollgate_budget_measure(b.scope_kind, b.scope_value, b.metric, b.currency, \(period.start), \(period.end)) AS used
                FROM budgets b WHERE b.name = \(budget))
            DELETE FROM budget_firings f USING b
            WHERE f.budget = b.name AND f.period_start = \(period.start) AND f.signal = 'threshold'
              AND b.used < b.effective * f.percent / 100
            """, logger: logger)
    }
}
