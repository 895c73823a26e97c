import Foundation
import TollgateCore

/// What the store knows about one budget in one period, read in one statement: everything the evaluation decides on.
public struct BudgetPeriodState: Sendable, Hashable {
    /// Use so far in the period (`tollgate_budget_measure` over the hourly rollups: tokens, or cost in the budget's currency).
    public var measured: Decimal
    /// One-off increases granted for this period.
    public var increase: Decimal
    /// Threshold percents that already fired this period.
    public var firedThresholds: Set<Int>
    /// Whether the forecast alert already fired this period.
    public var forecastFired: Bool

    public init(measured: Decimal, increase: Decimal = 0, firedThresholds: Set<Int> = [], forecastFired: Bool = false) {
        self.measured = measured
        self.increase = increase
        self.firedThresholds = firedThresholds
        self.forecastFired = forecastFired
    }
}

/// The two kinds of `budget_firings` row: a threshold percent, or the once-per-period forecast alert (percent 0).
public enum BudgetSignal: String, Sendable, Hashable {
    case threshold
    case forecast
}

/// One firing of a budget in a period, as `budget_firings` keeps it (unique per budget, period, signal and percent).
public struct BudgetFiring: Sendable, Hashable {
    public var budget: String
    public var period: BillingPeriod
    public var signal: BudgetSignal
    /// Threshold percent; 0 for the forecast.
    public var percent: Int
    public var measured: Decimal
    public var limit: Decimal

    public init(budget: String, period: BillingPeriod, signal: BudgetSignal, percent: Int, measured: Decimal, limit: Decimal) {
        self.budget = budget
        self.period = period
        self.signal = signal
        self.percent = percent
        self.measured = measured
        self.limit = limit
    }
}

/// A row to append to the audit trail (`budget_audit`).
public struct BudgetAuditRecord: Sendable, Hashable {
    public var budget: String?
    public var subscription: SubscriptionID?
    public var period: BillingPeriod?
    /// `threshold_crossed`, `exceeded`, `forecast_exceeded`, `suspended`, `suspend_skipped`, `suspend_failed`, `reactivated`,
    /// `resume_skipped`, `limit_increased`.
    public var event: String
    public var measured: Decimal?
    public var limit: Decimal?
    public var thresholdPercent: Int?
    public var action: String
    public var adapter: String?
    public var adapterResult: String?
    /// `rules-engine` or `admin:<name>`.
    public var actor: String
    public var reason: String?

    public init(
        budget: String? = nil, subscription: SubscriptionID? = nil, period: BillingPeriod? = nil, event: String, measured: Decimal? = nil,
        limit: Decimal? = nil, thresholdPercent: Int? = nil, action: String, adapter: String? = nil, adapterResult: String? = nil, actor: String,
        reason: String? = nil
    ) {
        self.budget = budget
        self.subscription = subscription
        self.period = period
        self.event = event
        self.measured = measured
        self.limit = limit
        self.thresholdPercent = thresholdPercent
        self.action = action
        self.adapter = adapter
        self.adapterResult = adapterResult
        self.actor = actor
        self.reason = reason
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

    public init(
        id: Int, occurredAt: Date, budget: String?, subscription: String?, event: String, measured: Decimal?, limit: Decimal?,
        thresholdPercent: Int?, action: String, adapter: String?, adapterResult: String?, actor: String, reason: String?
    ) {
        self.id = id
        self.occurredAt = occurredAt
        self.budget = budget
        self.subscription = subscription
        self.event = event
        self.measured = measured
        self.limit = limit
        self.thresholdPercent = thresholdPercent
        self.action = action
        self.adapter = adapter
        self.adapterResult = adapterResult
        self.actor = actor
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case id, budget, subscription, event, measured, limit, action, adapter, actor, reason
        case occurredAt = "occurred_at"
        case thresholdPercent = "threshold_percent"
        case adapterResult = "adapter_result"
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

    public init(
        budget: String, scopeKind: String, scopeValue: String?, metric: String, currency: String?, period: String, periodStart: Date,
        periodEnd: Date, currentUse: String, effectiveLimit: String, percentUsed: String, forecast: String?, state: String
    ) {
        self.budget = budget
        self.scopeKind = scopeKind
        self.scopeValue = scopeValue
        self.metric = metric
        self.currency = currency
        self.period = period
        self.periodStart = periodStart
        self.periodEnd = periodEnd
        self.currentUse = currentUse
        self.effectiveLimit = effectiveLimit
        self.percentUsed = percentUsed
        self.forecast = forecast
        self.state = state
    }

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
