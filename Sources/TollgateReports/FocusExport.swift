import Foundation
import TollgateCore
import TollgateStore

/// A month's charges as FOCUS rows (FinOps Open Cost and Usage Specification), one row per subscription, model,
/// backend/deployment, price version and charge class.
///
/// Columns follow FOCUS 1.2; those FOCUS 1.0 also requires (and 1.2 keeps) are included so the file validates against
/// 1.0 with `focus-validator`. Amounts keep the ledger's precision (10 decimal places, rounded half to even once per
/// row), so the rows sum exactly to the file's total; PTU shares are allocated per row by largest remainder at that
/// precision and sum exactly to the commitment. `x_PricingStatus` says how each row is charged: `priced`, `committed`
/// or `unpriced`. FOCUS has no empty cost, so unpriced rows carry 0 in the cost columns and `unpriced` here and in Tags:
/// they are not a zero price, they are usage waiting for one.
public struct FocusExport: Sendable {
    public static let scale = 10

    public static let columns = [
        "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart",
        "BillingPeriodEnd", "BillingAccountId", "BillingAccountName", "BillingCurrency", "ChargeCategory", "ChargeClass", "ChargeDescription",
        "ChargeFrequency", "ServiceCategory", "ServiceName", "ProviderName", "PublisherName", "InvoiceIssuerName", "PricingCategory",
        "PricingQuantity", "PricingUnit", "ListUnitPrice", "ContractedUnitPrice", "ConsumedQuantity", "ConsumedUnit", "SkuId", "SkuPriceId",
        "ResourceId", "ResourceName", "ResourceType", "RegionId", "RegionName", "SubAccountId", "SubAccountName",
        "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType",
        "Tags", "x_PricingStatus", "x_PriceList",
    ]

    public var rows: [[String: String]]
    /// Sum of `BilledCost` over the rows.
    public var total: Decimal
    public var currency: String?

    public static func build(
        period: BillingPeriod, facts: [ChargebackFact], commitments: [PTUCommitment], subscriptionNames: [SubscriptionID: String]
    ) throws(PricingError) -> FocusExport {
        let currency = try ChargebackDocument.billingCurrency(facts: facts, commitments: commitments)
        var rows: [[String: String]] = []
        var total = Decimal(0)
        // PTU shares per fact row, keyed by the fact's index.
        var shares: [Int: Decimal] = [:]
        var unallocated: [PTUCommitment] = []
        for commitment in commitments {
            var weights: [Int: Int64] = [:]
            for (i, fact) in facts.enumerated() where fact.committed && fact.chargeClass == .regular && fact.backend == commitment.backend {
                weights[i] = fact.totalTokens
            }
            let allocated = ProRataAllocation.allocate(commitment.monthlyAmount.rounded(scale: scale), scale: scale, weights: weights)
            if allocated.isEmpty { unallocated.append(commitment) }
            for share in allocated { shares[share.key] = share.amount }
        }
        func amount(_ value: Decimal) -> String { value.fixedPoint(scale: scale) }
        // A month has a few dozen distinct period boundaries but thousands of rows; formatting a date is the costly part.
        var timestamps: [Date: String] = [:]
        func timestamp(_ date: Date) -> String {
            if let text = timestamps[date] { return text }
            let text = date.focusTimestamp
            timestamps[date] = text
            return text
        }
        let billingPeriodStart = period.start.focusTimestamp
        let billingPeriodEnd = period.end.focusTimestamp
        for (i, fact) in facts.enumerated() {
            let status: String
            let billed: Decimal
            var list: Decimal
            if fact.committed {
                status = "committed"
                billed = fact.chargeClass == .regular ? (shares[i] ?? 0) : 0
                list = fact.cost?.rounded(scale: scale) ?? billed
            } else if let cost = fact.cost {
                status = "priced"
                billed = cost.rounded(scale: scale)
                list = billed
            } else {
                status = "unpriced"
                billed = 0
                list = 0
            }
            if fact.committed && fact.cost == nil { list = billed }
            total += billed
            let resource = "\(fact.backend)/\(fact.deployment.isEmpty ? fact.model : fact.deployment)"
            let mode: String
            switch status {
            case "committed": mode = "provisioned throughput share"
            case "unpriced": mode = "UNPRICED: no price in force, not billed"
            default: mode = "pay-as-you-go"
            }
            let billedText = amount(billed)
            var row: [String: String] = [
                "BilledCost": billedText, "EffectiveCost": billedText, "ListCost": list == billed ? billedText : amount(list),
                "ContractedCost": billedText,
                "ChargePeriodStart": timestamp(fact.chargePeriodStart), "ChargePeriodEnd": timestamp(fact.chargePeriodEnd),
                "BillingPeriodStart": billingPeriodStart, "BillingPeriodEnd": billingPeriodEnd,
                "BillingAccountId": fact.costCenter.isEmpty ? "unassigned" : fact.costCenter,
                "BillingAccountName": fact.costCenter.isEmpty ? "unassigned" : fact.costCenter,
                "BillingCurrency": fact.committed ? (fact.commitmentCurrency ?? currency ?? "") : (fact.currency ?? currency ?? "USD"),
                "ChargeCategory": "Usage", "ChargeClass": fact.chargeClass == .correction ? "Correction" : "",
                "ChargeDescription": "\(fact.model) tokens via \(fact.backend) (\(mode))", "ChargeFrequency": "Usage-Based",
                "ServiceCategory": "AI and Machine Learning", "ServiceName": fact.backend, "ProviderName": "Tollgate", "PublisherName": fact.backend,
                "InvoiceIssuerName": "Tollgate", "PricingCategory": status == "committed" ? "Committed" : (status == "priced" ? "Standard" : "Other"),
                "PricingQuantity": Self.millions(fact.totalTokens), "PricingUnit": "1M Tokens",
                "ConsumedQuantity": "\(fact.totalTokens).0", "ConsumedUnit": "Tokens", "SkuId": fact.model,
                "SkuPriceId": fact.priceID.map { "price-\($0)" } ?? "unpriced:\(fact.model)", "ResourceId": resource, "ResourceName": resource,
                "ResourceType": "LLM Deployment",
                "SubAccountId": fact.subscription.rawValue, "SubAccountName": subscriptionNames[fact.subscription] ?? fact.subscription.rawValue,
                "Tags": Self.tags(
                    costCenter: fact.costCenter, deployment: fact.deployment, pricing: status, product: fact.product, team: fact.team),
                "x_PricingStatus": status, "x_PriceList": fact.priceList ?? "",
            ]
            if fact.committed {
                row["CommitmentDiscountCategory"] = "Spend"
                row["CommitmentDiscountId"] = "ptu:\(fact.backend)"
                row["CommitmentDiscountName"] = "Provisioned throughput on \(fact.backend)"
                row["CommitmentDiscountStatus"] = "Used"
                row["CommitmentDiscountType"] = "Provisioned Throughput"
            }
            rows.append(row)
        }
        for commitment in unallocated {
            let value = commitment.monthlyAmount.rounded(scale: scale)
            total += value
            rows.append([
                "BilledCost": amount(value), "EffectiveCost": amount(value), "ListCost": amount(value), "ContractedCost": amount(value),
                "ChargePeriodStart": period.start.focusTimestamp, "ChargePeriodEnd": period.end.focusTimestamp,
                "BillingPeriodStart": period.start.focusTimestamp, "BillingPeriodEnd": period.end.focusTimestamp,
                "BillingAccountId": "unassigned", "BillingAccountName": "unassigned", "BillingCurrency": commitment.currency,
                "ChargeCategory": "Usage", "ChargeClass": "", "ChargeDescription": "Unused provisioned throughput on \(commitment.backend)",
                "ChargeFrequency": "Recurring", "ServiceCategory": "AI and Machine Learning", "ServiceName": commitment.backend,
                "ProviderName": "Tollgate", "PublisherName": commitment.backend, "InvoiceIssuerName": "Tollgate", "PricingCategory": "Committed",
                "PricingQuantity": "0.000000", "PricingUnit": "1M Tokens", "ConsumedQuantity": "0.0", "SkuPriceId": "ptu:\(commitment.backend)",
                "ConsumedUnit": "Tokens", "SkuId": "ptu",
                "ResourceId": commitment.backend, "ResourceName": commitment.backend, "ResourceType": "LLM Deployment",
                "CommitmentDiscountCategory": "Spend", "CommitmentDiscountId": "ptu:\(commitment.backend)",
                "CommitmentDiscountName": "Provisioned throughput on \(commitment.backend)", "CommitmentDiscountStatus": "Unused",
                "CommitmentDiscountType": "Provisioned Throughput", "Tags": "{\"pricing\":\"committed\"}", "x_PricingStatus": "committed",
            ])
        }
        return FocusExport(rows: rows, total: total, currency: currency)
    }

    /// The `Tags` JSON object, keys sorted, exactly as `JSONSerialization` with `.sortedKeys` and `.withoutEscapingSlashes`
    /// writes it (checked by a test), without bridging to `NSDictionary` and sorting the keys with locale-aware string
    /// comparison for every row: the keys are fixed, so their order is too.
    static func tags(costCenter: String, deployment: String, pricing: String, product: String, team: String) -> String {
        var json = "{"
        for (key, value) in [("cost_center", costCenter), ("deployment", deployment), ("pricing", pricing), ("product", product), ("team", team)] {
            json += key == "cost_center" ? "\"\(key)\":" : ",\"\(key)\":"
            appendJSONString(value, to: &json)
        }
        return json + "}"
    }

    /// A JSON string literal with the escapes `JSONSerialization` writes: quote, backslash, the short forms of backspace,
    /// form feed, line feed, carriage return and tab, `\u00xx` (lower-case hex) for other control characters; nothing else.
    static func appendJSONString(_ value: String, to json: inout String) {
        json += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": json += "\\\""
            case "\\": json += "\\\\"
            case "\u{8}": json += "\\b"
            case "\u{c}": json += "\\f"
            case "\n": json += "\\n"
            case "\r": json += "\\r"
            case "\t": json += "\\t"
            case "\u{0}"..."\u{f}": json += "\\u000" + String(scalar.value, radix: 16)
            case "\u{10}"..."\u{1f}": json += "\\u00" + String(scalar.value, radix: 16)
            default: json.unicodeScalars.append(scalar)
            }
        }
        json += "\""
    }

    /// `tokens` in millions with exactly 6 decimals ("1.234567"): the exact value, as `Decimal` division would print it,
    /// by integer arithmetic (Decimal division was a visible share of the export's time).
    static func millions(_ tokens: Int64) -> String {
        let magnitude = tokens.magnitude
        let fraction = String(magnitude % 1_000_000)
        return (tokens < 0 ? "-" : "") + "\(magnitude / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    /// RFC 4180 CSV with the FOCUS column names as header. Empty cells are nulls.
    public func csv() -> Data {
        var text = CSV.row(Self.columns)
        let numeric: Set<String> = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity", "ConsumedQuantity", "Tags"]
        let writtenAsIs = Self.columns.map { numeric.contains($0) }  // numbers and the Tags JSON get no formula guard
        for row in rows {
            var fields: [String] = []
            fields.reserveCapacity(Self.columns.count)
            for (i, column) in Self.columns.enumerated() {
                let value = row[column] ?? ""
                fields.append(writtenAsIs[i] ? CSV.number(value) : CSV.text(value))
            }
            text += CSV.row(fields)
        }
        return Data(text.utf8)
    }
}

extension Date {
    /// `2026-10-01T00:00:00Z`: FOCUS date-times are ISO 8601 in UTC.
    var focusTimestamp: String {
        self.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: false, timeZone: .utc))
    }
}
