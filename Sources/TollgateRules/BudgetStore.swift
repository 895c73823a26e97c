import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// Budgets as stored in `budgets` and `budget_thresholds`.
public struct BudgetStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Replaces the budgets that came from `tollgate.yaml` with `budgets` in one transaction: those missing from the
    /// file are removed (with their firing state; the audit trail stays), the rest upserted. Budgets created through the
    /// admin API (`source` = `admin:…`) are left alone.
    public func applyConfigured(_ budgets: [BudgetDefinition], logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { tx in
            let names = budgets.map(\.name)
            try await tx.query("DELETE FROM budgets WHERE source = 'config' AND NOT (name = ANY (\(names)))", logger: logger)
            for budget in budgets { try await Self.upsert(budget, source: "config", on: tx, logger: logger) }
        }
    }

    /// Creates or replaces one budget.
    /// - Parameter source: `config`, or `admin:<name>` for budgets managed through the admin API.
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

    /// Every budget, by name.
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
}

/// One row of the audit trail, as `reporting.budget_events` shows it.
public struct BudgetAuditEntry: Sendable, Hashable, Codable {
    public var id: Int
    public var occurredAt: Date
    public var budget: String?
    public var subscription: String?
    public var event: String
    public var measured: Decimal?
    public var limit: Decimal?
    public var thresholdPercent: Int?
    public var action: String
    public var adapter: String?
    public var adapterResult: String?
    public var actor: String
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case id, budget, subscription, event, measured, limit, action, adapter, actor, reason
        case occurredAt = "occurred_at"
        case thresholdPercent = "threshold_percent"
        case adapterResult = "adapter_result"
    }
}

/// Appends to and reads the audit trail.
enum BudgetAudit {
    struct Entry {
        var budget: String?
        var subscription: SubscriptionID?
        var period: BillingPeriod?
        var event: String
        var measured: Decimal?
        var limit: Decimal?
        var thresholdPercent: Int?
        var action: String
        var adapter: String?
        var adapterResult: String?
        var actor: String
        var reason: String?
    }

    static func append(_ e: Entry, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            INSERT INTO budget_audit (budget, subscription_id, period_start, period_end, event, measured, limit_amount, threshold_percent,
                                      action, adapter, adapter_result, actor, reason)
            VALUES (\(e.budget), \(e.subscription?.rawValue), \(e.period?.start), \(e.period?.end), \(e.event), \(e.measured), \(e.limit),
                    \(e.thresholdPercent), \(e.action), \(e.adapter), \(e.adapterResult), \(e.actor), \(e.reason))
            """, logger: logger)
    }

    static func read(client: PostgresClient, subscription: SubscriptionID?, budget: String?, limit: Int, logger: Logger) async throws
        -> [BudgetAuditEntry]
    {
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
}
