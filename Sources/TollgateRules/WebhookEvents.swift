import Foundation
import TollgateCore

/// The budget a budget event is about. Amounts are decimal strings so no receiver parses them through a float.
public struct BudgetPayload: Codable, Hashable, Sendable {
    public struct Scope: Codable, Hashable, Sendable {
        public var kind: String
        public var target: String?
    }
    public struct Period: Codable, Hashable, Sendable {
        public var kind: String
        public var timeZone: String
        public var start: String
        public var end: String
        enum CodingKeys: String, CodingKey {
            case kind, start, end
            case timeZone = "time_zone"
        }
    }
    public var name: String
    public var scope: Scope
    public var metric: String
    public var currency: String?
    public var period: Period

    public init(_ budget: BudgetDefinition, period: BillingPeriod) {
        name = budget.name
        scope = Scope(kind: budget.scope.kind, target: budget.scope.target)
        metric = budget.metric.rawValue
        currency = budget.currency
        self.period = Period(kind: budget.period.rawValue, timeZone: budget.timeZone.identifier, start: period.start.iso8601, end: period.end.iso8601)
    }
}

/// `budget.threshold_crossed` and `budget.exceeded` (the latter when the threshold is 100 % or more).
public struct ThresholdCrossedPayload: Codable, Hashable, Sendable {
    public struct Threshold: Codable, Hashable, Sendable {
        public var percent: Int
        public var action: String
        public init(percent: Int, action: String) {
            self.percent = percent
            self.action = action
        }
    }
    public var budget: BudgetPayload
    public var threshold: Threshold
    public var measured: String
    public var limit: String
    public var percentUsed: String

    public init(budget: BudgetPayload, threshold: Threshold, measured: String, limit: String, percentUsed: String) {
        self.budget = budget
        self.threshold = threshold
        self.measured = measured
        self.limit = limit
        self.percentUsed = percentUsed
    }

    enum CodingKeys: String, CodingKey {
        case budget, threshold, measured, limit
        case percentUsed = "percent_used"
    }
}

/// `budget.forecast_exceeded`.
public struct ForecastExceededPayload: Codable, Hashable, Sendable {
    public var budget: BudgetPayload
    public var measured: String
    public var limit: String
    public var forecast: String

    public init(budget: BudgetPayload, measured: String, limit: String, forecast: String) {
        self.budget = budget
        self.measured = measured
        self.limit = limit
        self.forecast = forecast
    }
}

/// `subscription.suspended` and `subscription.reactivated`.
public struct SubscriptionStatePayload: Codable, Hashable, Sendable {
    public var subscription: String
    /// The budget that caused it; null for a manual change.
    public var budget: String?
    public var state: String
    public var reason: String
    /// `rules-engine` or `admin:<name>`.
    public var actor: String
    /// The management API(s) that applied it (`tollgate`, `azure-apim`).
    public var adapter: String
    /// When the budget period ends and the rules engine reactivates the subscription; null when not applicable.
    public var resetsAt: String?

    public init(subscription: String, budget: String?, state: String, reason: String, actor: String, adapter: String, resetsAt: String?) {
        self.subscription = subscription
        self.budget = budget
        self.state = state
        self.reason = reason
        self.actor = actor
        self.adapter = adapter
        self.resetsAt = resetsAt
    }

    enum CodingKeys: String, CodingKey {
        case subscription, budget, state, reason, actor, adapter
        case resetsAt = "resets_at"
    }
}

extension Decimal {
    /// Exact decimal text without trailing zeros or exponent ("1000000", "12.5"), for webhook payloads.
    var payloadText: String { description }
}
