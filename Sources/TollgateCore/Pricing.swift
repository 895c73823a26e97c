import Foundation

/// One version of a model's price: what a million tokens of each kind cost from `effectiveFrom` until the next
/// version of the same key (model, backend, deployment) takes over. Validity is half-open, `[effectiveFrom, next)`.
///
/// Usage is rolled up by the hour, so a price may only start on a whole UTC hour: a price starting at 10:30 could not
/// be applied to the 10:00 rollup row without guessing.
public struct ModelPrice: Hashable, Sendable, Codable {
    /// The model as the upstream reports it (`gpt-4o-2024-08-06`).
    public var model: String
    /// Empty: any backend. Otherwise the price applies to this backend only and wins over a model-wide price.
    public var backend: String
    /// Empty: any deployment. A deployment price needs its backend too and wins over a backend price.
    public var deployment: String
    /// ISO 4217, upper case.
    public var currency: String
    /// Inclusive; a whole UTC hour.
    public var effectiveFrom: Date
    /// Per 1M prompt tokens not served from the cache.
    public var inputPerMillion: Decimal
    /// Per 1M cached prompt tokens; `nil` bills them at `inputPerMillion`.
    public var cachedInputPerMillion: Decimal?
    /// Per 1M completion tokens.
    public var outputPerMillion: Decimal
    /// Per 1M reasoning tokens; `nil` bills them as output (they are part of the completion tokens).
    public var reasoningPerMillion: Decimal?

    public init(
        model: String, backend: String = "", deployment: String = "", currency: String, effectiveFrom: Date,
        inputPerMillion: Decimal, cachedInputPerMillion: Decimal? = nil, outputPerMillion: Decimal, reasoningPerMillion: Decimal? = nil
    ) {
        self.model = model
        self.backend = backend
        self.deployment = deployment
        self.currency = currency
        self.effectiveFrom = effectiveFrom
        self.inputPerMillion = inputPerMillion
        self.cachedInputPerMillion = cachedInputPerMillion
        self.outputPerMillion = outputPerMillion
        self.reasoningPerMillion = reasoningPerMillion
    }

    /// How specific the price is: a deployment price beats a backend price, which beats a model-wide price.
    public var specificity: Int { deployment.isEmpty ? (backend.isEmpty ? 0 : 1) : 2 }

    /// What is wrong with this price, in words an operator can act on. Empty when it is valid.
    public var problems: [String] {
        var problems: [String] = []
        if model.isEmpty { problems.append("model must not be empty") }
        if !deployment.isEmpty && backend.isEmpty { problems.append("a deployment price must name its backend too") }
        if currency.range(of: "^[A-Z]{3}$", options: .regularExpression) == nil {
            problems.append("currency must be an ISO 4217 code such as USD")
        }
        if !effectiveFrom.isWholeUTCHour {
            problems.append("effective_from must be on a whole UTC hour (usage is rolled up by the hour), got \(effectiveFrom.iso8601)")
        }
        let amounts: [(String, Decimal?)] = [
            ("input_per_1m", inputPerMillion), ("cached_input_per_1m", cachedInputPerMillion),
            ("output_per_1m", outputPerMillion), ("reasoning_per_1m", reasoningPerMillion),
        ]
        for case (let name, let amount?) in amounts {
            if amount < 0 { problems.append("\(name) must not be negative") }
            // NUMERIC(20, 10) holds ten digits before the point and ten after.
            if amount >= Decimal(string: "10000000000")! { problems.append("\(name) is too large") }
            if amount.rounded(scale: 10, mode: .plain) != amount { problems.append("\(name) has more than 10 decimal places") }
        }
        return problems
    }
}

extension Date {
    /// True at hh:00:00.000 UTC.
    public var isWholeUTCHour: Bool {
        let seconds = timeIntervalSince1970
        return seconds == (seconds / 3600).rounded(.down) * 3600
    }
}

/// Token quantities to price: the counts of one usage event, or the sums of a rollup row.
public struct TokenQuantities: Hashable, Sendable, Codable {
    public var promptTokens: Int64
    /// Part of `promptTokens`.
    public var cachedPromptTokens: Int64
    public var completionTokens: Int64
    /// Part of `completionTokens`.
    public var reasoningTokens: Int64

    public init(promptTokens: Int64 = 0, cachedPromptTokens: Int64 = 0, completionTokens: Int64 = 0, reasoningTokens: Int64 = 0) {
        self.promptTokens = promptTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.completionTokens = completionTokens
        self.reasoningTokens = reasoningTokens
    }

    public init(_ usage: TokenUsage) {
        self.init(
            promptTokens: Int64(usage.promptTokens), cachedPromptTokens: Int64(usage.cachedPromptTokens),
            completionTokens: Int64(usage.completionTokens), reasoningTokens: Int64(usage.reasoningTokens))
    }

    public var totalTokens: Int64 { promptTokens + completionTokens }
}

public enum PricingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// No price for this model (and backend/deployment) was in force at that instant. Such usage is reported as unpriced, never as zero.
    case noPriceEffective(model: String, at: Date)
    case currencyMismatch(expected: String, found: String)
    case invalidPrice(model: String, problems: [String])

    public var description: String {
        switch self {
        case .noPriceEffective(let model, let at): "no price for model '\(model)' is in force at \(at.iso8601)"
        case .currencyMismatch(let expected, let found): "amounts in \(found) cannot be added to amounts in \(expected)"
        case .invalidPrice(let model, let problems): "price for '\(model)': \(problems.joined(separator: "; "))"
        }
    }
}

/// All price versions, answering "which price was in force for this usage at that instant".
public struct PriceBook: Sendable, Hashable {
    public private(set) var prices: [ModelPrice]

    /// - Throws: `PricingError.invalidPrice` for the first price with problems.
    public init(_ prices: [ModelPrice]) throws(PricingError) {
        for price in prices where !price.problems.isEmpty {
            throw .invalidPrice(model: price.model, problems: price.problems)
        }
        self.prices = prices.sorted {
            ($0.model, $0.backend, $0.deployment, $0.effectiveFrom) < ($1.model, $1.backend, $1.deployment, $1.effectiveFrom)
        }
    }

    /// The most specific price whose validity `[effectiveFrom, next version's effectiveFrom)` contains `instant`.
    public func price(model: String, backend: String = "", deployment: String = "", at instant: Date) -> ModelPrice? {
        var best: ModelPrice?
        for candidate in prices where candidate.model == model && candidate.effectiveFrom <= instant {
            let applies =
                (candidate.backend.isEmpty || candidate.backend == backend) && (candidate.deployment.isEmpty || candidate.deployment == deployment)
            guard applies else { continue }
            // Within one key the latest start not after the instant is the one in force (the next version ends it).
            if let current = best {
                if candidate.specificity > current.specificity
                    || (candidate.specificity == current.specificity && candidate.effectiveFrom > current.effectiveFrom)
                {
                    best = candidate
                }
            } else {
                best = candidate
            }
        }
        return best
    }

    /// The unrounded cost of `quantities` used at `instant`.
    /// - Throws: `PricingError.noPriceEffective` when no price is in force: the caller lists the usage as unpriced.
    public func cost(of quantities: TokenQuantities, model: String, backend: String = "", deployment: String = "", at instant: Date)
        throws(PricingError) -> Money
    {
        guard let price = price(model: model, backend: backend, deployment: deployment, at: instant) else {
            throw .noPriceEffective(model: model, at: instant)
        }
        return price.cost(of: quantities)
    }
}

extension ModelPrice {
    /// The unrounded cost of `quantities` at this price. Exact: `Decimal` arithmetic, divided by 10^6 by moving the point.
    public func cost(of q: TokenQuantities) -> Money {
        let uncachedInput = Decimal(q.promptTokens - q.cachedPromptTokens) * inputPerMillion
        let cachedInput = Decimal(q.cachedPromptTokens) * (cachedInputPerMillion ?? inputPerMillion)
        let output: Decimal
        if let reasoningPerMillion {
            output = Decimal(q.completionTokens - q.reasoningTokens) * outputPerMillion + Decimal(q.reasoningTokens) * reasoningPerMillion
        } else {
            output = Decimal(q.completionTokens) * outputPerMillion
        }
        var perMillion = uncachedInput + cachedInput + output
        var result = Decimal()
        _ = NSDecimalMultiplyByPowerOf10(&result, &perMillion, -6, .plain)
        return Money(result, currency)
    }
}

/// The one rounding rule of Tollgate's money output: each export line is rounded once, half to even (banker's),
/// to the currency's minor unit; a document's total is the sum of its rounded lines, never a rounding of the unrounded sum.
public enum ChargebackRounding {
    /// Decimal places of the currency's minor unit (ISO 4217). Currencies not listed use 2.
    public static func scale(for currency: String) -> Int {
        switch currency {
        case "JPY", "KRW", "CLP", "ISK", "VND", "XOF", "XAF", "UGX", "PYG", "RWF": 0
        case "BHD", "KWD", "OMR", "JOD", "TND", "LYD", "IQD": 3
        default: 2
        }
    }

    /// Rounds one line's amount: banker's rounding at the currency's minor unit.
    public static func line(_ amount: Decimal, currency: String) -> Decimal {
        amount.rounded(scale: scale(for: currency), mode: .bankers)
    }
}

/// Pro-rata allocation of a fixed amount (a PTU commitment) to its consumers by tokens, in whole minor units.
///
/// Each consumer first gets its exact share `amount × tokens / totalTokens` truncated to the minor unit; the minor
/// units left over (fewer than the number of consumers) go one each to the largest truncated remainders, ties to the
/// larger token count, then to the smaller key. So the allocated amounts sum to `amount` exactly, and the result does
/// not depend on the order of the input.
public enum ProRataAllocation {
    /// - Parameters:
    ///   - amount: what to allocate, already at the currency's minor unit (a commitment is a whole amount of money).
    ///   - scale: decimal places of the minor unit.
    ///   - weights: consumers and their token counts. Consumers with zero tokens get nothing.
    /// - Returns: one amount per consumer with tokens, sorted by key. Empty when no consumer used any tokens:
    ///   the caller then shows the commitment as unallocated.
    public static func allocate<Key: Comparable & Hashable>(_ amount: Decimal, scale: Int, weights: [Key: Int64]) -> [(key: Key, amount: Decimal)] {
        let used = weights.filter { $0.value > 0 }
        let total = used.values.reduce(Int64(0), +)
        guard total > 0 else { return [] }
        var unit = Decimal(1)
        var one = Decimal(1)
        _ = NSDecimalMultiplyByPowerOf10(&unit, &one, Int16(-scale), .plain)
        // Work in integer minor units so truncation and remainders are exact.
        let units = amount / unit
        var shares: [(key: Key, tokens: Int64, units: Decimal, remainder: Decimal)] = []
        for (key, tokens) in used {
            let exact = units * Decimal(tokens) / Decimal(total)
            let floor = exact.rounded(scale: 0, mode: .down)
            shares.append((key, tokens, floor, exact - floor))
        }
        var leftover = units - shares.reduce(Decimal(0)) { $0 + $1.units }
        shares.sort { a, b in
            if a.remainder != b.remainder { return a.remainder > b.remainder }
            if a.tokens != b.tokens { return a.tokens > b.tokens }
            return a.key < b.key
        }
        var index = 0
        while leftover > 0 && !shares.isEmpty {
            shares[index % shares.count].units += 1
            leftover -= 1
            index += 1
        }
        return shares.sorted { $0.key < $1.key }.map { ($0.key, $0.units * unit) }
    }
}
