import Foundation

/// An amount written in `tollgate.yaml`, read exactly from the YAML text (`0.15` or `"0.15"`), never through a float.
public struct ExactAmount: Hashable, Sendable, Codable, CustomStringConvertible {
    public var value: Decimal
    public init(_ value: Decimal) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let text = try? container.decode(String.self), let value = Decimal(exactly: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "must be a plain decimal amount such as 2.50 (no exponent, no currency sign)")
        }
        self.value = value
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value.description)
    }

    public var description: String { value.description }
}

/// A price version in `tollgate.yaml` (`prices:`), the same fields as a price-list CSV row (docs/reporting.md).
public struct PriceSpec: Hashable, Sendable, Codable {
    public var model: String
    public var backend: String?
    public var deployment: String?
    public var currency: String
    /// `yyyy-MM-dd` (midnight UTC) or RFC 3339; must be a whole UTC hour.
    public var effectiveFrom: String
    public var inputPerMillion: ExactAmount
    public var cachedInputPerMillion: ExactAmount?
    public var outputPerMillion: ExactAmount
    public var reasoningPerMillion: ExactAmount?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case model, backend, deployment, currency
        case effectiveFrom = "effective_from"
        case inputPerMillion = "input_per_1m"
        case cachedInputPerMillion = "cached_input_per_1m"
        case outputPerMillion = "output_per_1m"
        case reasoningPerMillion = "reasoning_per_1m"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        model = try c.decode(String.self, forKey: .model)
        backend = try c.decodeIfPresent(String.self, forKey: .backend)
        deployment = try c.decodeIfPresent(String.self, forKey: .deployment)
        currency = try c.decode(String.self, forKey: .currency)
        effectiveFrom = try c.decode(String.self, forKey: .effectiveFrom)
        inputPerMillion = try c.decode(ExactAmount.self, forKey: .inputPerMillion)
        cachedInputPerMillion = try c.decodeIfPresent(ExactAmount.self, forKey: .cachedInputPerMillion)
        outputPerMillion = try c.decode(ExactAmount.self, forKey: .outputPerMillion)
        reasoningPerMillion = try c.decodeIfPresent(ExactAmount.self, forKey: .reasoningPerMillion)
    }

    /// The price version, or nil when `effective_from` is not a date.
    public var modelPrice: ModelPrice? {
        guard let start = PolicyDates.instant(effectiveFrom) else { return nil }
        return ModelPrice(
            model: model, backend: backend ?? "", deployment: deployment ?? "", currency: currency, effectiveFrom: start,
            inputPerMillion: inputPerMillion.value, cachedInputPerMillion: cachedInputPerMillion?.value,
            outputPerMillion: outputPerMillion.value, reasoningPerMillion: reasoningPerMillion?.value)
    }
}

/// A backend's fixed monthly commitment (provisioned throughput, PTU) in `tollgate.yaml` (`commitments:`).
public struct CommitmentSpec: Hashable, Sendable, Codable {
    public var backend: String
    /// The first month it applies to, `yyyy-MM`.
    public var effectiveFrom: String
    public var monthlyAmount: ExactAmount
    public var currency: String
    public var description: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case backend, currency, description
        case effectiveFrom = "effective_from"
        case monthlyAmount = "monthly_amount"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backend = try c.decode(String.self, forKey: .backend)
        effectiveFrom = try c.decode(String.self, forKey: .effectiveFrom)
        monthlyAmount = try c.decode(ExactAmount.self, forKey: .monthlyAmount)
        currency = try c.decode(String.self, forKey: .currency)
        description = try c.decodeIfPresent(String.self, forKey: .description)
    }

    public var month: BillingPeriod? { BillingPeriod.month(effectiveFrom) }
}

enum PolicyDates {
    /// `yyyy-MM-dd` as midnight UTC, or an RFC 3339 timestamp.
    static func instant(_ text: String) -> Date? {
        if text.count == 10, let day = Date(iso8601: text + "T00:00:00Z") { return day }
        return Date(iso8601: text)
    }
}

extension PolicyDocument {
    /// Problems of the `prices:` and `commitments:` sections, located by path.
    func pricingProblems(backendNames: Set<String>) -> [PolicyProblem] {
        var problems: [PolicyProblem] = []
        for (i, price) in prices.enumerated() {
            let at: [PolicyPathComponent] = [.key("prices"), .index(i)]
            guard let modelPrice = price.modelPrice else {
                problems.append(PolicyProblem(path: at + [.key("effective_from")], message: "must be a date (2026-10-01) or an RFC 3339 timestamp"))
                continue
            }
            for problem in modelPrice.problems { problems.append(PolicyProblem(path: at, message: problem)) }
            if let backend = price.backend, !backend.isEmpty, !backendNames.contains(backend) {
                problems.append(PolicyProblem(path: at + [.key("backend")], message: "unknown backend '\(backend)'"))
            }
        }
        for (i, commitment) in commitments.enumerated() {
            let at: [PolicyPathComponent] = [.key("commitments"), .index(i)]
            if !backendNames.contains(commitment.backend) {
                problems.append(PolicyProblem(path: at + [.key("backend")], message: "unknown backend '\(commitment.backend)'"))
            }
            if commitment.month == nil { problems.append(PolicyProblem(path: at + [.key("effective_from")], message: "must be a month such as 2026-10")) }
            if commitment.monthlyAmount.value < 0 { problems.append(PolicyProblem(path: at + [.key("monthly_amount")], message: "must not be negative")) }
            if commitment.currency.range(of: "^[A-Z]{3}$", options: .regularExpression) == nil {
                problems.append(PolicyProblem(path: at + [.key("currency")], message: "must be an ISO 4217 code such as USD"))
            }
        }
        return problems
    }
}
