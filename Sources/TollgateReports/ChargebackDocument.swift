import Foundation
import TollgateCore
import TollgateStore

/// What a chargeback line is grouped by (`--group-by`).
public enum ChargebackGrouping: String, CaseIterable, Sendable, Codable {
    case team
    case costCenter = "cost-center"
    case subscription
    case product
    case model

    func key(of fact: ChargebackFact) -> String {
        let value: String
        switch self {
        case .team: value = fact.team
        case .costCenter: value = fact.costCenter
        case .subscription: value = fact.subscription.rawValue
        case .product: value = fact.product
        case .model: value = fact.model
        }
        return value.isEmpty ? "(none)" : value
    }
}

public enum ChargebackFormat: String, CaseIterable, Sendable, Codable {
    case csv, json, focus
}

/// How a line is charged.
public enum ChargeType: String, Hashable, Sendable, Codable, Comparable {
    /// Pay-as-you-go tokens at the price in force.
    case usage
    /// A share of a backend's provisioned-throughput commitment, pro rata by tokens.
    case ptu
    /// Tokens no price covered: listed with no amount, never as zero.
    case unpriced

    var order: Int {
        switch self {
        case .usage: 0
        case .ptu: 1
        case .unpriced: 2
        }
    }
    public static func < (a: Self, b: Self) -> Bool { a.order < b.order }
}

/// One line of a chargeback document.
public struct ChargebackLine: Hashable, Sendable {
    public var chargeClass: ChargeClass
    public var chargeType: ChargeType
    /// The value of the grouping dimension (`(none)` when the usage carried none).
    public var group: String
    /// Set on unpriced lines (the price to chase) and when grouping by model.
    public var model: String?
    /// Set on PTU lines: whose commitment this is a share of.
    public var backend: String?
    public var requests: Int64 = 0
    public var promptTokens: Int64 = 0
    public var cachedTokens: Int64 = 0
    public var completionTokens: Int64 = 0
    public var reasoningTokens: Int64 = 0
    public var totalTokens: Int64 = 0
    /// Before rounding; `nil` on unpriced lines.
    public var unroundedAmount: Decimal?
    /// Rounded half to even at the currency's minor unit; `nil` on unpriced lines.
    public var amount: Decimal?

    mutating func add(_ fact: ChargebackFact) {
        requests += fact.requests
        promptTokens += fact.quantities.promptTokens
        cachedTokens += fact.quantities.cachedPromptTokens
        completionTokens += fact.quantities.completionTokens
        reasoningTokens += fact.quantities.reasoningTokens
        totalTokens += fact.totalTokens
    }

    var sortKey: (Int, Int, String, String, String) {
        (chargeClass == .regular ? 0 : 1, chargeType.order, group, model ?? "", backend ?? "")
    }
}

public enum PeriodStatus: String, Hashable, Sendable, Codable {
    /// Still changing as usage lands.
    case open
    /// Frozen: this document never changes again (late usage goes to the next open month as corrections).
    case closed
}

/// A month's chargeback, grouped and rounded: what the CSV and JSON exports print.
///
/// Rounding rule: each line's amount is its unrounded cost rounded once, half to even (banker's), to the currency's
/// minor unit; PTU shares are allocated in whole minor units by largest remainder so they sum to the commitment; the
/// document's total is the sum of its rounded lines, exactly.
public struct ChargebackDocument: Sendable {
    public var period: BillingPeriod
    public var status: PeriodStatus
    public var groupBy: ChargebackGrouping
    /// The billing currency; `nil` when nothing in the month was priced or committed.
    public var currency: String?
    public var generatedAt: Date
    /// The price lists whose versions priced this month's usage.
    public var priceLists: [String]
    public var lines: [ChargebackLine]

    /// Sum of the rounded line amounts.
    public var total: Decimal { lines.compactMap(\.amount).reduce(0, +) }

    /// Groups and rounds `facts`.
    /// - Throws: `PricingError.currencyMismatch` when the month's prices and commitments are in more than one currency.
    public static func build(
        period: BillingPeriod, status: PeriodStatus, groupBy: ChargebackGrouping, facts: [ChargebackFact], commitments: [PTUCommitment],
        generatedAt: Date
    ) throws(PricingError) -> ChargebackDocument {
        let currency = try billingCurrency(facts: facts, commitments: commitments)
        let scale = ChargebackRounding.scale(for: currency ?? "USD")
        struct Key: Hashable {
            var chargeClass: ChargeClass
            var chargeType: ChargeType
            var group: String
            var model: String?
            var backend: String?
        }
        var lines: [Key: ChargebackLine] = [:]
        var ptuWeights: [String: [String: Int64]] = [:]  // backend → group → tokens
        for fact in facts {
            let group = groupBy.key(of: fact)
            let key: Key
            if fact.committed {
                key = Key(
                    chargeClass: fact.chargeClass, chargeType: .ptu, group: group, model: groupBy == .model ? fact.model : nil, backend: fact.backend)
                if fact.chargeClass == .regular { ptuWeights[fact.backend, default: [:]][group, default: 0] += fact.totalTokens }
            } else if let cost = fact.cost {
                key = Key(chargeClass: fact.chargeClass, chargeType: .usage, group: group, model: groupBy == .model ? fact.model : nil, backend: nil)
                lines[
                    key, default: ChargebackLine(chargeClass: key.chargeClass, chargeType: .usage, group: group, model: key.model, unroundedAmount: 0)
                ]
                .unroundedAmount! += cost
            } else {
                key = Key(chargeClass: fact.chargeClass, chargeType: .unpriced, group: group, model: fact.model, backend: nil)
            }
            lines[
                key,
                default: ChargebackLine(
                    chargeClass: key.chargeClass, chargeType: key.chargeType, group: group, model: key.model, backend: key.backend)
            ]
            .add(fact)
        }
        // Late usage on a committed backend is covered by the commitment of the month it was used in: no further amount.
        for key in lines.keys where key.chargeType == .ptu && key.chargeClass == .correction {
            lines[key]?.unroundedAmount = 0
            lines[key]?.amount = 0
        }
        for commitment in commitments {
            let amount = ChargebackRounding.line(commitment.monthlyAmount, currency: commitment.currency)
            let weights = ptuWeights[commitment.backend] ?? [:]
            let shares = ProRataAllocation.allocate(amount, scale: scale, weights: weights)
            if shares.isEmpty {
                let key = Key(chargeClass: .regular, chargeType: .ptu, group: "(unallocated)", model: nil, backend: commitment.backend)
                lines[key] = ChargebackLine(
                    chargeClass: .regular, chargeType: .ptu, group: key.group, backend: commitment.backend, unroundedAmount: commitment.monthlyAmount,
                    amount: amount)
                continue
            }
            let total = Decimal(weights.values.reduce(Int64(0), +))
            for share in shares {
                let key = Key(
                    chargeClass: .regular, chargeType: .ptu, group: share.key, model: groupBy == .model ? share.key : nil, backend: commitment.backend
                )
                lines[key]?.amount = share.amount
                lines[key]?.unroundedAmount = commitment.monthlyAmount * Decimal(weights[share.key] ?? 0) / total
            }
        }
        var sorted = Array(lines.values)
        sorted.sort { $0.sortKey < $1.sortKey }
        for i in sorted.indices where sorted[i].chargeType == .usage {
            sorted[i].amount = sorted[i].unroundedAmount.map { $0.rounded(scale: scale, mode: .bankers) }
        }
        let priceLists = Set(facts.compactMap(\.priceList)).sorted()
        return ChargebackDocument(
            period: period, status: status, groupBy: groupBy, currency: currency, generatedAt: generatedAt, priceLists: priceLists, lines: sorted)
    }

    static func billingCurrency(facts: [ChargebackFact], commitments: [PTUCommitment]) throws(PricingError) -> String? {
        var currencies = facts.filter { !$0.committed }.compactMap(\.currency) + commitments.map(\.currency)
        currencies.sort()
        guard let first = currencies.first else { return nil }
        if let other = currencies.first(where: { $0 != first }) { throw .currencyMismatch(expected: first, found: other) }
        return first
    }
}

extension ChargebackDocument {
    public static let csvColumns = [
        "period", "group_by", "group", "charge_type", "charge_class", "model", "backend", "requests", "prompt_tokens", "cached_tokens",
        "completion_tokens", "reasoning_tokens", "total_tokens", "amount", "currency",
    ]

    /// RFC 4180 CSV: a header row, one row per line, then a `total` row whose amount is the sum of the line amounts.
    /// Unpriced lines have an empty amount. Text cells that a spreadsheet would run as a formula start with an apostrophe.
    public func csv() -> Data {
        let scale = ChargebackRounding.scale(for: currency ?? "USD")
        let month = period.monthLabel
        var text = CSV.row(Self.csvColumns)
        for line in lines {
            text += CSV.row([
                month, groupBy.rawValue, CSV.text(line.group), line.chargeType.rawValue, line.chargeClass.rawValue, CSV.text(line.model ?? ""),
                CSV.text(line.backend ?? ""), String(line.requests), String(line.promptTokens), String(line.cachedTokens),
                String(line.completionTokens), String(line.reasoningTokens), String(line.totalTokens),
                CSV.number(line.amount?.fixedPoint(scale: scale) ?? ""), line.amount == nil ? "" : (currency ?? ""),
            ])
        }
        let priced = lines.filter { $0.amount != nil }
        text += CSV.row([
            month, groupBy.rawValue, "", "total", "", "", "", String(priced.reduce(Int64(0)) { $0 + $1.requests }),
            String(priced.reduce(Int64(0)) { $0 + $1.promptTokens }), String(priced.reduce(Int64(0)) { $0 + $1.cachedTokens }),
            String(priced.reduce(Int64(0)) { $0 + $1.completionTokens }), String(priced.reduce(Int64(0)) { $0 + $1.reasoningTokens }),
            String(priced.reduce(Int64(0)) { $0 + $1.totalTokens }), total.fixedPoint(scale: scale), currency ?? "",
        ])
        return Data(text.utf8)
    }

    /// JSON: period, currency, generated-at, price-list versions, lines and totals. Amounts are strings in fixed point,
    /// so no JSON reader turns them into binary floating point.
    public func json() throws -> Data {
        let scale = ChargebackRounding.scale(for: currency ?? "USD")
        func amount(_ value: Decimal?) -> String? { value?.fixedPoint(scale: scale) }
        let unpriced = lines.filter { $0.chargeType == .unpriced }
        let body = JSONDocument(
            period: period.monthLabel, periodStart: period.start.iso8601, periodEnd: period.end.iso8601, periodStatus: status.rawValue,
            groupBy: groupBy.rawValue, currency: currency, generatedAt: generatedAt.iso8601,
            rounding: "each line rounded half to even to \(scale) decimal places; totals are sums of rounded lines",
            priceListVersions: priceLists,
            lines: lines.map { line in
                JSONLine(
                    group: line.group, chargeType: line.chargeType.rawValue, chargeClass: line.chargeClass.rawValue, model: line.model,
                    backend: line.backend, requests: line.requests, promptTokens: line.promptTokens, cachedTokens: line.cachedTokens,
                    completionTokens: line.completionTokens, reasoningTokens: line.reasoningTokens, totalTokens: line.totalTokens,
                    amount: amount(line.amount), unroundedAmount: line.unroundedAmount?.fixedPoint(scale: 10))
            },
            totals: JSONTotals(
                amount: amount(total) ?? "0",
                usage: amount(lines.filter { $0.chargeType == .usage && $0.chargeClass == .regular }.compactMap(\.amount).reduce(0, +)) ?? "0",
                ptu: amount(lines.filter { $0.chargeType == .ptu && $0.chargeClass == .regular }.compactMap(\.amount).reduce(0, +)) ?? "0",
                corrections: amount(lines.filter { $0.chargeClass == .correction }.compactMap(\.amount).reduce(0, +)) ?? "0",
                unpricedLines: unpriced.count, unpricedTokens: unpriced.reduce(Int64(0)) { $0 + $1.totalTokens }))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(body)
    }
}

struct JSONDocument: Encodable {
    var period, periodStart, periodEnd, periodStatus, groupBy: String
    var currency: String?
    var generatedAt, rounding: String
    var priceListVersions: [String]
    var lines: [JSONLine]
    var totals: JSONTotals

    enum CodingKeys: String, CodingKey {
        case period, currency, rounding, lines, totals
        case periodStart = "period_start", periodEnd = "period_end", periodStatus = "period_status", groupBy = "group_by"
        case generatedAt = "generated_at", priceListVersions = "price_list_versions"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(period, forKey: .period)
        try c.encode(periodStart, forKey: .periodStart)
        try c.encode(periodEnd, forKey: .periodEnd)
        try c.encode(periodStatus, forKey: .periodStatus)
        try c.encode(groupBy, forKey: .groupBy)
        try c.encode(currency, forKey: .currency)  // null, not missing, when nothing was priced
        try c.encode(generatedAt, forKey: .generatedAt)
        try c.encode(rounding, forKey: .rounding)
        try c.encode(priceListVersions, forKey: .priceListVersions)
        try c.encode(lines, forKey: .lines)
        try c.encode(totals, forKey: .totals)
    }
}

struct JSONLine: Encodable {
    var group, chargeType, chargeClass: String
    var model, backend: String?
    var requests, promptTokens, cachedTokens, completionTokens, reasoningTokens, totalTokens: Int64
    var amount, unroundedAmount: String?

    enum CodingKeys: String, CodingKey {
        case group, model, backend, requests, amount
        case chargeType = "charge_type", chargeClass = "charge_class", promptTokens = "prompt_tokens", cachedTokens = "cached_tokens"
        case completionTokens = "completion_tokens", reasoningTokens = "reasoning_tokens", totalTokens = "total_tokens"
        case unroundedAmount = "unrounded_amount"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(group, forKey: .group)
        try c.encode(chargeType, forKey: .chargeType)
        try c.encode(chargeClass, forKey: .chargeClass)
        try c.encode(model, forKey: .model)
        try c.encode(backend, forKey: .backend)
        try c.encode(requests, forKey: .requests)
        try c.encode(promptTokens, forKey: .promptTokens)
        try c.encode(cachedTokens, forKey: .cachedTokens)
        try c.encode(completionTokens, forKey: .completionTokens)
        try c.encode(reasoningTokens, forKey: .reasoningTokens)
        try c.encode(totalTokens, forKey: .totalTokens)
        try c.encode(amount, forKey: .amount)  // null on unpriced lines, never "0"
        try c.encode(unroundedAmount, forKey: .unroundedAmount)
    }
}

struct JSONTotals: Encodable {
    var amount, usage, ptu, corrections: String
    var unpricedLines: Int
    var unpricedTokens: Int64

    enum CodingKeys: String, CodingKey {
        case amount, usage, ptu, corrections
        case unpricedLines = "unpriced_lines", unpricedTokens = "unpriced_tokens"
    }
}
