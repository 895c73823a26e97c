import Foundation

/// One entry of the `budgets:` section of `tollgate.yaml`:
///
/// ```yaml
/// budgets:
///   - name: search-monthly
///     scope: subscription          # subscription | product | team | cost_center | all
///     target: team-search-prod     # required unless scope is all
///     metric: tokens               # tokens | cost
///     period: monthly              # daily | weekly | monthly | yearly
///     time_zone: Europe/Berlin     # optional; UTC by default
///     limit: 1000000               # tokens, or an amount of `currency`
///     currency: USD                # cost budgets only
///     forecast: true               # raise budget.forecast_exceeded (default true)
///     thresholds:
///       - { percent: 80, action: alert }
///       - { percent: 100, action: suspend }
/// ```
public struct BudgetSpec: Hashable, Sendable, Codable {
    public var name: String
    public var scope: String
    public var target: String?
    public var metric: BudgetMetric
    public var period: PeriodKind
    public var timeZone: String?
    public var limit: Decimal
    public var currency: String?
    public var forecast: Bool
    public var thresholds: [BudgetThreshold]

    public init(
        name: String, scope: String, target: String? = nil, metric: BudgetMetric = .tokens, period: PeriodKind = .monthly,
        timeZone: String? = nil, limit: Decimal, currency: String? = nil, forecast: Bool = true, thresholds: [BudgetThreshold]
    ) {
        self.name = name
        self.scope = scope
        self.target = target
        self.metric = metric
        self.period = period
        self.timeZone = timeZone
        self.limit = limit
        self.currency = currency
        self.forecast = forecast
        self.thresholds = thresholds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, scope, target, metric, period, limit, currency, forecast, thresholds
        case timeZone = "time_zone"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        scope = try c.decode(String.self, forKey: .scope)
        target = try c.decodeIfPresent(String.self, forKey: .target)
        metric = try c.decodeIfPresent(BudgetMetric.self, forKey: .metric) ?? .tokens
        period = try c.decodeIfPresent(PeriodKind.self, forKey: .period) ?? .monthly
        timeZone = try c.decodeIfPresent(String.self, forKey: .timeZone)
        // YAML scalars arrive as text, which parses exactly; JSON numbers decode as Decimal. Never through Double.
        if let text = try? c.decode(String.self, forKey: .limit) {
            guard let value = Decimal(exactly: text) else {
                throw DecodingError.dataCorruptedError(forKey: .limit, in: c, debugDescription: "must be a plain number such as 1000000 or 250.00")
            }
            limit = value
        } else {
            limit = try c.decode(Decimal.self, forKey: .limit)
        }
        currency = try c.decodeIfPresent(String.self, forKey: .currency)
        forecast = try c.decodeIfPresent(Bool.self, forKey: .forecast) ?? true
        thresholds = try c.decodeIfPresent([BudgetThreshold].self, forKey: .thresholds) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(scope, forKey: .scope)
        try c.encodeIfPresent(target, forKey: .target)
        try c.encode(metric, forKey: .metric)
        try c.encode(period, forKey: .period)
        try c.encodeIfPresent(timeZone, forKey: .timeZone)
        try c.encode(limit.description, forKey: .limit)
        try c.encodeIfPresent(currency, forKey: .currency)
        try c.encode(forecast, forKey: .forecast)
        try c.encode(thresholds, forKey: .thresholds)
    }

    /// The budget this entry describes; nil when `validate(budgets:…)` would report a problem with its scope or time zone.
    public var definition: BudgetDefinition? {
        guard let scope = BudgetScope(kind: scope, target: scope == "all" ? nil : target) else { return nil }
        let zone: TimeZone
        if let timeZone {
            guard let named = TimeZone(identifier: timeZone) else { return nil }
            zone = named
        } else {
            zone = .utc
        }
        return BudgetDefinition(
            name: name, scope: scope, metric: metric, period: period, timeZone: zone, limit: limit,
            currency: metric == .cost ? currency : nil, thresholds: thresholds, forecast: forecast)
    }
}

/// Checks the `budgets:` section against itself and the rest of the document.
/// - Parameters:
///   - budgets: the section, in file order.
///   - knownSubscriptions, knownProducts: ids and names a `target` may name.
///   - knownTeams, knownCostCenters: values a `team` or `cost_center` target may name; nil skips the check
///     (teams and cost centers are free text on subscriptions, so a budget may be written before its first subscription).
/// - Returns: problems located by path (`budgets[1].thresholds[0].percent`); empty when the section is sound.
public func validate(
    budgets: [BudgetSpec], knownSubscriptions: Set<SubscriptionID>, knownProducts: Set<String>,
    knownTeams: Set<String>? = nil, knownCostCenters: Set<String>? = nil
) -> [PolicyProblem] {
    var problems: [PolicyProblem] = []
    func add(_ path: [PolicyPathComponent], _ message: String) { problems.append(PolicyProblem(path: path, message: message)) }
    var names: Set<String> = []
    for (i, budget) in budgets.enumerated() {
        let at: [PolicyPathComponent] = [.key("budgets"), .index(i)]
        if budget.name.range(of: #"^[a-z0-9][a-z0-9._-]{0,63}$"#, options: .regularExpression) == nil {
            add(at + [.key("name")], "must be a slug: lower-case letters, digits, '.', '_' or '-'")
        }
        if !names.insert(budget.name).inserted { add(at + [.key("name")], "duplicate budget name '\(budget.name)'") }
        switch budget.scope {
        case "all":
            if budget.target != nil { add(at + [.key("target")], "must be absent when scope is 'all'") }
        case "subscription", "product", "team", "cost_center":
            guard let target = budget.target, !target.isEmpty else {
                add(at + [.key("target")], "is required when scope is '\(budget.scope)'")
                break
            }
            switch budget.scope {
            case "subscription" where !knownSubscriptions.contains(SubscriptionID(target)):
                add(at + [.key("target")], "unknown subscription '\(target)'")
            case "product" where !knownProducts.contains(target):
                add(at + [.key("target")], "unknown product '\(target)'")
            case "team" where knownTeams.map { !$0.contains(target) } ?? false:
                add(at + [.key("target")], "no subscription belongs to team '\(target)'")
            case "cost_center" where knownCostCenters.map { !$0.contains(target) } ?? false:
                add(at + [.key("target")], "no subscription belongs to cost center '\(target)'")
            default: break
            }
        default:
            add(at + [.key("scope")], "must be one of: \(BudgetScope.kinds.joined(separator: ", "))")
        }
        if let zone = budget.timeZone, TimeZone(identifier: zone) == nil {
            add(at + [.key("time_zone")], "unknown time zone '\(zone)'; use an IANA name such as Europe/Berlin")
        }
        if budget.limit <= 0 { add(at + [.key("limit")], "must be positive") }
        switch budget.metric {
        case .tokens:
            if budget.limit != budget.limit.rounded(scale: 0) { add(at + [.key("limit")], "a token limit must be a whole number") }
            if budget.currency != nil { add(at + [.key("currency")], "only cost budgets have a currency") }
        case .cost:
            if let currency = budget.currency {
                if currency.range(of: "^[A-Z]{3}$", options: .regularExpression) == nil {
                    add(at + [.key("currency")], "must be an ISO 4217 code such as USD")
                }
            } else {
                add(at + [.key("currency")], "is required for a cost budget")
            }
        }
        if budget.thresholds.isEmpty { add(at + [.key("thresholds")], "a budget needs at least one threshold") }
        var percents: Set<Int> = []
        for (j, threshold) in budget.thresholds.enumerated() {
            let path = at + [.key("thresholds"), .index(j), .key("percent")]
            if !(1...1000).contains(threshold.percent) { add(path, "must be between 1 and 1000") }
            if !percents.insert(threshold.percent).inserted { add(path, "duplicate threshold \(threshold.percent) %") }
        }
    }
    return problems
}
