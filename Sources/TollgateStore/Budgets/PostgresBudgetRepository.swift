import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// `BudgetRepository` on PostgreSQL: `budgets`, `budget_thresholds`, `budget_adjustments`, `budget_firings`,
/// `budget_audit`, and the `reporting.budget_status` / `reporting.budget_events` views.
public struct PostgresBudgetRepository: BudgetRepository {
    let client: PostgresClient
    package init(client: PostgresClient) { self.client = client }

    public func applyConfigured(_ budgets: [BudgetDefinition], logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { tx in
            let names = budgets.map(\.name)
            try await tx.query("DELETE FROM budgets WHERE source = 'config' AND NOT (name = ANY (\(names)))", logger: logger)
            for budget in budgets { try await Self.upsert(budget, source: "config", on: tx, logger: logger) }
        }
    }

    public func upsert(_ budget: BudgetDefinition, source: String, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { tx in try await Self.upsert(budget, source: source, on: tx, logger: logger) }
    }

    static func upsert(_ budget: BudgetDefinition, source: String, on tx: PostgresConnection, logger: Logger) async throws {
        try await tx.query(
            """
            INSERT INTO budgets (name, scope_kind, scope_value, metric, currency, period, time_zone, limit_amount, forecast, source)
            VALUES (\(budget.name), \(budget.scope.kind), \(budget.scope.target), \(budget.metric.rawValue), \(budget.currency),
                    \(budget.period.rawValue), \(budget.timeZone.identifier), \(budget.limit), \(budget.forecast), \(source))
            ON CONFLICT (name) DO UPDATE SET scope_kind = EXCLUDED.scope_kind, scope_value = EXCLUDED.scope_value, metric = EXCLUDED.metric,
                currency = EXCLUDED.currency, period = EXCLUDED.period, time_zone = EXCLUDED.time_zone, limit_amount = EXCLUDED.limit_amount,
                forecast = EXCLUDED.forecast, source = EXCLUDED.source, updated_at = now()
            """, logger: logger)
        try await tx.query("DELETE FROM budget_thresholds WHERE budget = \(budget.name)", logger: logger)
        for threshold in budget.thresholds {
            try await tx.query(
                "INSERT INTO budget_thresholds (budget, percent, action) VALUES (\(budget.name), \(threshold.percent), \(threshold.action.rawValue))",
                logger: logger)
        }
    }

    public func remove(_ name: String, logger: Logger) async throws {
        try await client.query("DELETE FROM budgets WHERE name = \(name)", logger: logger)
    }

    public func all(logger: Logger) async throws -> [BudgetDefinition] {
        var thresholds: [String: [BudgetThreshold]] = [:]
        for try await (budget, percent, action) in try await client.query(
            "SELECT budget, percent, action FROM budget_thresholds", logger: logger
        ).decode((String, Int, String).self) {
            thresholds[budget, default: []].append(BudgetThreshold(percent: percent, action: BudgetAction(rawValue: action) ?? .alert))
        }
        var budgets: [BudgetDefinition] = []
        let rows = try await client.query(
            "SELECT name, scope_kind, scope_value, metric, currency, period, time_zone, limit_amount, forecast FROM budgets ORDER BY name",
            logger: logger)
        for try await (name, kind, target, metric, currency, period, zone, limit, forecast) in rows.decode(
            (String, String, String?, String, String?, String, String, Decimal, Bool).self)
        {
            guard let scope = BudgetScope(kind: kind, target: target), let metric = BudgetMetric(rawValue: metric),
                let period = PeriodKind(rawValue: period), let timeZone = TimeZone(identifier: zone)
            else {
                logger.error("Budget row cannot be read; skipped", metadata: ["budget.name": "\(name)"])
                continue
            }
            budgets.append(
                BudgetDefinition(
                    name: name, scope: scope, metric: metric, period: period, timeZone: timeZone, limit: limit, currency: currency,
                    thresholds: thresholds[name] ?? [], forecast: forecast))
        }
        return budgets
    }

    public func state(of budget: BudgetDefinition, in period: BillingPeriod, logger: Logger) async throws -> BudgetPeriodState {
        let rows = try await client.query(
            """
            SELECT tollgate_budget_measure(\(budget.scope.kind), \(budget.scope.target), \(budget.metric.rawValue), \(budget.currency),
                                           \(period.start), \(period.end)),
                   (SELECT coalesce(sum(amount), 0) FROM budget_adjustments WHERE budget = \(budget.name) AND period_start = \(period.start)),
                   (SELECT coalesce(array_agg(percent), '{}') FROM budget_firings
                    WHERE budget = \(budget.name) AND period_start = \(period.start) AND signal = 'threshold'),
                   EXISTS (SELECT 1 FROM budget_firings WHERE budget = \(budget.name) AND period_start = \(period.start) AND signal = 'forecast')
            """, logger: logger)
        // A SELECT without FROM always returns its one row.
        guard let (measured, increase, fired, forecastFired) = try await rows.collect().first?.decode((Decimal, Decimal, [Int], Bool).self) else {
            return BudgetPeriodState(measured: 0)
        }
        return BudgetPeriodState(measured: measured, increase: increase, firedThresholds: Set(fired), forecastFired: forecastFired)
    }

    public func status(logger: Logger) async throws -> [BudgetStatus] {
        var result: [BudgetStatus] = []
        let rows = try await client.query(
            """
            SELECT budget, scope_kind, scope_value, metric, currency, period, period_start, period_end, current_use, effective_limit,
                   percent_used, forecast, state
            FROM reporting.budget_status ORDER BY budget
            """, logger: logger)
        for try await (name, kind, value, metric, currency, period, start, end, use, limit, percent, forecast, state) in rows.decode(
            (String, String, String?, String, String?, String, Date, Date, Decimal, Decimal, Decimal, Decimal?, String).self)
        {
            result.append(
                BudgetStatus(
                    budget: name, scopeKind: kind, scopeValue: value, metric: metric, currency: currency, period: period, periodStart: start,
                    periodEnd: end, currentUse: use.description, effectiveLimit: limit.description, percentUsed: percent.description,
                    forecast: forecast.map { $0.rounded(scale: 2).description }, state: state))
        }
        return result
    }

    public func knownTargets(logger: Logger) async throws -> BudgetTargets {
        var subscriptions: Set<SubscriptionID> = []
        for try await id in try await client.query("SELECT id FROM subscriptions", logger: logger).decode(String.self) {
            subscriptions.insert(SubscriptionID(id))
        }
        var products: Set<String> = []
        for try await name in try await client.query("SELECT name FROM products", logger: logger).decode(String.self) { products.insert(name) }
        return BudgetTargets(subscriptions: subscriptions, products: products)
    }

    public func audit(subscription: SubscriptionID?, budget: String?, limit: Int, logger: Logger) async throws -> [BudgetAuditEntry] {
        var entries: [BudgetAuditEntry] = []
        let rows = try await client.query(
            """
            SELECT event_id, occurred_at, budget, subscription_id, event, measured, limit_amount, threshold_percent, action, adapter,
                   adapter_result, actor, reason
            FROM reporting.budget_events
            WHERE (\(subscription?.rawValue)::text IS NULL OR subscription_id = \(subscription?.rawValue))
              AND (\(budget)::text IS NULL OR budget = \(budget))
            ORDER BY event_id LIMIT \(limit)
            """, logger: logger)
        for try await (id, at, budget, subscription, event, measured, limitAmount, percent, action, adapter, result, actor, reason) in rows.decode(
            (Int, Date, String?, String?, String, Decimal?, Decimal?, Int?, String, String?, String?, String, String?).self)
        {
            entries.append(
                BudgetAuditEntry(
                    id: id, occurredAt: at, budget: budget, subscription: subscription, event: event, measured: measured, limit: limitAmount,
                    thresholdPercent: percent, action: action, adapter: adapter, adapterResult: result, actor: actor, reason: reason))
        }
        return entries
    }

    public func transaction<T: Sendable>(logger: Logger, _ body: (any RulesTransaction) async throws -> T) async throws -> T {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await body(PostgresRulesTransaction(connection: connection, logger: logger))
            }
        } catch let error as PostgresTransactionError {
            // The body's own error, once the rollback went through: callers see what they threw, as with the in-memory store.
            if let thrown = error.closureError, error.rollbackError == nil { throw thrown }
            throw error
        }
    }
}

extension PostgresDatabase {
    /// Budgets, their per-period state and the audit trail.
    public var budgets: PostgresBudgetRepository { PostgresBudgetRepository(client: client) }
}
