import Foundation

/// What a budget counts against: one subscription, every subscription of a product, team or cost center, or everything.
public enum BudgetScope: Hashable, Sendable, CustomStringConvertible {
    case subscription(SubscriptionID)
    case product(String)
    case team(String)
    case costCenter(String)
    case all

    /// The `scope` value in `tollgate.yaml` and the `scope_kind` column.
    public var kind: String {
        switch self {
        case .subscription: "subscription"
        case .product: "product"
        case .team: "team"
        case .costCenter: "cost_center"
        case .all: "all"
        }
    }

    /// The `target` value in `tollgate.yaml` and the `scope_value` column; nil for `all`.
    public var target: String? {
        switch self {
        case .subscription(let id): id.rawValue
        case .product(let name), .team(let name), .costCenter(let name): name
        case .all: nil
        }
    }

    /// Rebuilds a scope from its stored kind and target; nil when they do not make a scope.
    public init?(kind: String, target: String?) {
        switch (kind, target) {
        case ("subscription", let target?): self = .subscription(SubscriptionID(target))
        case ("product", let target?): self = .product(target)
        case ("team", let target?): self = .team(target)
        case ("cost_center", let target?): self = .costCenter(target)
        case ("all", nil): self = .all
        default: return nil
        }
    }

    public static let kinds = ["subscription", "product", "team", "cost_center", "all"]

    public var description: String { target.map { "\(kind):\($0)" } ?? kind }
}

/// What a budget measures.
public enum BudgetMetric: String, Hashable, Sendable, Codable, CaseIterable {
    /// Total tokens (prompt + completion) from the hourly usage rollup.
    case tokens
    /// Money, priced at the price in force when each request was made, in the budget's currency.
    case cost
}

/// What happens when a threshold is crossed.
public enum BudgetAction: String, Hashable, Sendable, Codable, CaseIterable {
    /// Audit record and webhooks only.
    case alert
    /// Additionally suspends every subscription in the budget's scope until the period rolls over (a hard limit).
    case suspend
}

/// A share of the limit and what to do when use reaches it.
public struct BudgetThreshold: Hashable, Sendable, Codable {
    /// Percent of the limit, 1…1000 (above 100 for "tell me when we are at 150 %").
    public var percent: Int
    public var action: BudgetAction

    public init(percent: Int, action: BudgetAction) {
        self.percent = percent
        self.action = action
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case percent, action }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        percent = try c.decode(Int.self, forKey: .percent)
        action = try c.decodeIfPresent(BudgetAction.self, forKey: .action) ?? .alert
    }

    /// The measured value at which this threshold is crossed, for `limit`.
    public func crossingValue(limit: Decimal) -> Decimal { limit * Decimal(percent) / 100 }
}

/// A budget: a limit on tokens or money over a calendar period, with the thresholds that raise alerts or suspend.
public struct BudgetDefinition: Hashable, Sendable {
    /// A slug, unique among budgets (`search-monthly`).
    public var name: String
    public var scope: BudgetScope
    public var metric: BudgetMetric
    public var period: PeriodKind
    /// Periods start at midnight in this zone; UTC unless the budget names another.
    public var timeZone: TimeZone
    /// Tokens, or an amount of `currency`.
    public var limit: Decimal
    /// ISO 4217 code; required for `cost` budgets, nil for `tokens`.
    public var currency: String?
    /// Sorted by percent, ascending.
    public var thresholds: [BudgetThreshold]
    /// Raise `budget.forecast_exceeded` when the linear projection of period-end use is above the limit.
    public var forecast: Bool

    public init(
        name: String, scope: BudgetScope, metric: BudgetMetric = .tokens, period: PeriodKind = .monthly, timeZone: TimeZone = .utc,
        limit: Decimal, currency: String? = nil, thresholds: [BudgetThreshold], forecast: Bool = true
    ) {
        self.name = name
        self.scope = scope
        self.metric = metric
        self.period = period
        self.timeZone = timeZone
        self.limit = limit
        self.currency = currency
        self.thresholds = thresholds.sorted { $0.percent < $1.percent }
        self.forecast = forecast
    }

    /// The budget period that contains `now`.
    public func period(at now: Date) -> BillingPeriod { BillingPeriod.containing(now, kind: period, timeZone: timeZone) }

    /// True when some threshold suspends: use at that threshold is refused until the period rolls over.
    public var isHard: Bool { thresholds.contains { $0.action == .suspend } }
}

/// The budget arithmetic: which thresholds are crossed, the forecast, the status. Pure, so tests can stand on any instant.
public enum BudgetMath {
    /// Thresholds that `measured` has reached (`measured >= limit × percent / 100`) and that have not fired yet this period,
    /// lowest first. A threshold fires once per budget per period: pass the percents already fired in `alreadyFired`.
    public static func newlyCrossed(
        thresholds: [BudgetThreshold], measured: Decimal, limit: Decimal, alreadyFired: Set<Int>
    ) -> [BudgetThreshold] {
        thresholds
            .filter { !alreadyFired.contains($0.percent) && measured >= $0.crossingValue(limit: limit) }
            .sorted { $0.percent < $1.percent }
    }

    /// Linear projection of use at the end of `period` from use so far: `measured × length / elapsed`.
    ///
    /// Returns nil before `minimumElapsedFraction` of the period has passed (one request in the first minute of a month
    /// would otherwise project to an absurd figure) and outside the period.
    public static func forecast(measured: Decimal, period: BillingPeriod, now: Date, minimumElapsedFraction: Decimal = Decimal(string: "0.1")!)
        -> Decimal?
    {
        guard period.contains(now) else { return nil }
        // Whole milliseconds keep the arithmetic in Decimal; the sub-millisecond remainder cannot matter here.
        let elapsed = Decimal(Int64((now.timeIntervalSince(period.start) * 1000).rounded(.down)))
        let length = Decimal(Int64((period.end.timeIntervalSince(period.start) * 1000).rounded()))
        guard elapsed > 0, length > 0, elapsed >= length * minimumElapsedFraction else { return nil }
        return measured * length / elapsed
    }

    /// True when the forecast is strictly above the limit while use itself is still at or below it
    /// (once use is over the limit, `budget.exceeded` says more than a forecast could).
    public static func forecastExceeds(
        measured: Decimal, limit: Decimal, period: BillingPeriod, now: Date,
        minimumElapsedFraction: Decimal = Decimal(string: "0.1")!
    ) -> Bool {
        guard measured <= limit,
            let projected = forecast(measured: measured, period: period, now: now, minimumElapsedFraction: minimumElapsedFraction)
        else { return false }
        return projected > limit
    }

    /// Use as a percentage of the limit, rounded half to even to two decimals.
    public static func percent(measured: Decimal, limit: Decimal) -> Decimal {
        guard limit > 0 else { return 0 }
        return (measured * 100 / limit).rounded(scale: 2)
    }
}

/// The outcome of evaluating one budget at one instant.
public struct BudgetEvaluation: Hashable, Sendable {
    public var budget: String
    public var period: BillingPeriod
    public var measured: Decimal
    /// The configured limit plus one-off increases granted for this period.
    public var effectiveLimit: Decimal
    /// Thresholds to fire now, lowest first.
    public var crossed: [BudgetThreshold]
    /// Fire `budget.forecast_exceeded` now (it fires once per period too).
    public var forecastExceeded: Bool
    public var forecast: Decimal?

    /// Evaluates `budget` at `now`.
    /// - Parameters:
    ///   - measured: use so far in the period that contains `now`.
    ///   - increase: one-off increases granted for this period (`tollgate subscriptions resume --increase`).
    ///   - alreadyFired: percents that fired earlier in this period.
    ///   - forecastFired: whether the forecast alert fired earlier in this period.
    public init(
        budget: BudgetDefinition, now: Date, measured: Decimal, increase: Decimal = 0, alreadyFired: Set<Int>, forecastFired: Bool
    ) {
        self.budget = budget.name
        self.period = budget.period(at: now)
        self.measured = measured
        self.effectiveLimit = budget.limit + increase
        self.crossed = BudgetMath.newlyCrossed(thresholds: budget.thresholds, measured: measured, limit: effectiveLimit, alreadyFired: alreadyFired)
        self.forecast = BudgetMath.forecast(measured: measured, period: period, now: now)
        self.forecastExceeded =
            budget.forecast && !forecastFired
            && BudgetMath.forecastExceeds(measured: measured, limit: effectiveLimit, period: period, now: now)
    }

    /// Use as a percentage of the effective limit.
    public var percent: Decimal { BudgetMath.percent(measured: measured, limit: effectiveLimit) }
}
