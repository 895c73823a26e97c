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

/// One row of `reporting.budget_status`: a budget in its current period. Amounts are decimal strings.
public struct BudgetStatus: Sendable, Hashable, Codable {
    public var budget: String
    public var scopeKind: String
    public var scopeValue: String?
    public var metric: String
    public var currency: String?
    public var period: String
    public var periodStart: Date
    public var periodEnd: Date
    public var currentUse: String
    public var effectiveLimit: String
    public var percentUsed: String
    public var forecast: String?
    /// `ok`, `warning`, `exceeded` or `suspended`.
    public var state: String

    enum CodingKeys: String, CodingKey {
        case budget, metric, currency, period, forecast, state
        case scopeKind = "scope_kind"
        case scopeValue = "scope_value"
        case periodStart = "period_start"
        case periodEnd = "period_end"
        case currentUse = "current_use"
        case effectiveLimit = "effective_limit"
        case percentUsed = "percent_used"
    }
}

extension BudgetStore {
    /// Every budget's current status, by name (`reporting.budget_status`, evaluated at the database's clock).
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

    /// Creates or replaces a budget from the admin API after the same checks `tollgate.yaml` gets.
    /// - Parameter actor: `admin:<name>`; such budgets survive `tollgate apply`.
    /// - Throws: the problems, when there are any (`[PolicyProblem]` wrapped in `BudgetRejected`).
    public func put(_ spec: BudgetSpec, actor: String, logger: Logger) async throws {
        var subscriptions: Set<SubscriptionID> = []
        for try await id in try await client.query("SELECT id FROM subscriptions", logger: logger).decode(String.self) {
            subscriptions.insert(SubscriptionID(id))
        }
        var products: Set<String> = []
        for try await name in try await client.query("SELECT name FROM products", logger: logger).decode(String.self) { products.insert(name) }
        let problems = validate(budgets: [spec], knownSubscriptions: subscriptions, knownProducts: products)
        guard problems.isEmpty, let definition = spec.definition else { throw BudgetRejected(problems: problems) }
        try await upsert(definition, source: actor, logger: logger)
    }
}

/// A budget the admin API refused, with the problems located in it (`budgets[0].limit: must be positive`).
public struct BudgetRejected: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [PolicyProblem]
    public var description: String {
        problems.map { "\($0.pathText.replacingOccurrences(of: "budgets[0].", with: "")): \($0.message)" }.joined(separator: "; ")
    }
}
