import Foundation
import Testing
import TollgateCore

@Suite struct PricingTests {
    static func d(_ text: String) -> Decimal { Decimal(string: text)! }
    static func t(_ text: String) -> Date { Date(iso8601: text)! }

    static let book = try! PriceBook([
        ModelPrice(
            model: "gpt-4o", currency: "USD", effectiveFrom: t("2026-09-01T00:00:00Z"), inputPerMillion: d("2.50"),
            cachedInputPerMillion: d("1.25"), outputPerMillion: d("10.00")),
        ModelPrice(
            model: "gpt-4o", currency: "USD", effectiveFrom: t("2026-10-15T00:00:00Z"), inputPerMillion: d("2.00"),
            outputPerMillion: d("8.00")),
        ModelPrice(
            model: "gpt-4o", backend: "azure-east", currency: "USD", effectiveFrom: t("2026-10-01T00:00:00Z"),
            inputPerMillion: d("3.00"), outputPerMillion: d("12.00")),
        ModelPrice(
            model: "o3", currency: "USD", effectiveFrom: t("2026-09-01T00:00:00Z"), inputPerMillion: d("2.00"),
            outputPerMillion: d("8.00"), reasoningPerMillion: d("4.00")),
    ])

    @Test(arguments: [
        ("2026-10-14T23:59:59Z", "3.50"),  // old price: 1M × 2.50 + 0.1M × 10.00
        ("2026-10-15T00:00:00Z", "2.80"),  // new price from the first instant: 1M × 2.00 + 0.1M × 8.00
        ("2026-09-01T00:00:00Z", "3.50"),
    ])
    func priceInForceAtTheInstant(instant: String, expected: String) throws {
        let cost = try Self.book.cost(of: TokenQuantities(promptTokens: 1_000_000, completionTokens: 100_000), model: "gpt-4o", at: Self.t(instant))
        #expect(cost == Money(Self.d(expected), "USD"))
    }

    @Test func noPriceBeforeTheFirstVersionIsAnErrorNotZero() {
        #expect(throws: PricingError.noPriceEffective(model: "gpt-4o", at: Self.t("2026-08-31T23:59:59Z"))) {
            try Self.book.cost(of: TokenQuantities(promptTokens: 1), model: "gpt-4o", at: Self.t("2026-08-31T23:59:59Z"))
        }
        #expect(throws: PricingError.noPriceEffective(model: "llama", at: Self.t("2026-10-01T00:00:00Z"))) {
            try Self.book.cost(of: TokenQuantities(promptTokens: 1), model: "llama", at: Self.t("2026-10-01T00:00:00Z"))
        }
    }

    @Test func backendPriceWinsOverModelPrice() throws {
        let q = TokenQuantities(promptTokens: 1_000_000, completionTokens: 0)
        #expect(try Self.book.cost(of: q, model: "gpt-4o", backend: "azure-east", at: Self.t("2026-10-20T00:00:00Z")).amount == Self.d("3.00"))
        #expect(try Self.book.cost(of: q, model: "gpt-4o", backend: "openai", at: Self.t("2026-10-20T00:00:00Z")).amount == Self.d("2.00"))
    }

    @Test func cachedInputAndReasoning() throws {
        // 600k uncached × 2.50 + 400k cached × 1.25 + 200k output × 10.00 = 1.50 + 0.50 + 2.00
        let cached = TokenQuantities(promptTokens: 1_000_000, cachedPromptTokens: 400_000, completionTokens: 200_000)
        #expect(try Self.book.cost(of: cached, model: "gpt-4o", at: Self.t("2026-10-01T00:00:00Z")).amount == Self.d("4.00"))
        // No cached price after the 15th: cached tokens bill as input. 1M × 2.00 + 0.2M × 8.00
        #expect(try Self.book.cost(of: cached, model: "gpt-4o", at: Self.t("2026-10-16T00:00:00Z")).amount == Self.d("3.60"))
        // o3 prices reasoning apart: 0.1M × 2.00 + (0.3M − 0.2M) × 8.00 + 0.2M × 4.00 = 0.20 + 0.80 + 0.80
        let reasoning = TokenQuantities(promptTokens: 100_000, completionTokens: 300_000, reasoningTokens: 200_000)
        #expect(try Self.book.cost(of: reasoning, model: "o3", at: Self.t("2026-10-01T00:00:00Z")).amount == Self.d("1.80"))
    }

    @Test func tinyCostsStayExact() throws {
        // 1 token at 2.50 per 1M is 0.0000025, not a float approximation.
        let cost = try Self.book.cost(of: TokenQuantities(promptTokens: 1), model: "gpt-4o", at: Self.t("2026-10-01T00:00:00Z"))
        #expect(cost.amount == Self.d("0.0000025"))
    }

    @Test func priceMustStartOnAWholeUTCHour() {
        let price = ModelPrice(model: "m", currency: "USD", effectiveFrom: Self.t("2026-10-15T10:30:00Z"), inputPerMillion: 1, outputPerMillion: 1)
        #expect(price.problems == ["effective_from must be on a whole UTC hour (usage is rolled up by the hour), got 2026-10-15T10:30:00.000Z"])
        #expect(throws: PricingError.self) { try PriceBook([price]) }
    }

    @Test(arguments: [("0.125", "0.12"), ("0.135", "0.14"), ("0.999", "1.00"), ("-0.125", "-0.12"), ("2.5", "2.50")])
    func linesRoundHalfToEven(unrounded: String, expected: String) {
        #expect(ChargebackRounding.line(Self.d(unrounded), currency: "USD").fixedPoint(scale: 2) == expected)
    }

    @Test func yenHasNoMinorUnit() {
        #expect(ChargebackRounding.line(Self.d("102.5"), currency: "JPY") == Self.d("102"))
    }

    @Test func proRataSumsToTheCommitmentExactly() {
        let thirds = ProRataAllocation.allocate(Self.d("100.00"), scale: 2, weights: ["a": 1, "b": 1, "c": 1])
        #expect(thirds.map(\.amount) == [Self.d("33.34"), Self.d("33.33"), Self.d("33.33")])
        let uneven = ProRataAllocation.allocate(Self.d("1000.00"), scale: 2, weights: ["search": 2_000_000, "chat": 1_000_000, "idle": 0])
        #expect(uneven.map(\.key) == ["chat", "search"])
        #expect(uneven.map(\.amount) == [Self.d("333.33"), Self.d("666.67")])
        #expect(ProRataAllocation.allocate(Self.d("5.00"), scale: 2, weights: ["x": 0]).isEmpty)
        let many = ProRataAllocation.allocate(
            Self.d("0.05"), scale: 2, weights: Dictionary(uniqueKeysWithValues: (0..<7).map { ("s\($0)", Int64(1)) }))
        #expect(many.map(\.amount).reduce(0, +) == Self.d("0.05"))
        #expect(many.filter { $0.amount == Self.d("0.01") }.map(\.key) == ["s0", "s1", "s2", "s3", "s4"])
    }
}

@Suite struct PriceListCSVTests {
    @Test func parsesAValidList() throws {
        let prices = try PriceListCSV.parse(
            """
            model,currency,effective_from,input_per_1m,output_per_1m,cached_input_per_1m\r
            gpt-4o,USD,2026-10-01,2.50,10.00,1.25\r
            "o3-mini",EUR,2026-10-15T06:00:00Z,1.10,4.40,\r

            """)
        #expect(prices.count == 2)
        #expect(prices[0].cachedInputPerMillion == Decimal(string: "1.25")!)
        #expect(prices[1].cachedInputPerMillion == nil)
        #expect(prices[1].effectiveFrom == Date(iso8601: "2026-10-15T06:00:00Z")!)
        #expect(prices[1].currency == "EUR")
    }

    @Test func reportsEveryProblemWithItsLine() {
        do {
            _ = try PriceListCSV.parse(
                """
                model,currency,effective_from,input_per_1m,output_per_1m
                gpt-4o,USD,2026-10-01,2.50,10.00
                gpt-4o,usd,2026-10-01T10:30:00Z,abc,1e3
                o3,USD,2026-10-01,-1,4
                gpt-4o,USD,2026-10-01,2.50,10.00
                """)
            Issue.record("expected errors")
        } catch {
            #expect(
                error.errors.map(\.description) == [
                    "line 3: input_per_1m 'abc' is not a plain decimal number such as 2.50",
                    "line 3: output_per_1m '1e3' is not a plain decimal number such as 2.50",
                    "line 4: input_per_1m must not be negative",
                    "line 5: the same model, backend, deployment and effective_from is already on line 2",
                ])
        }
    }

    @Test func unknownAndMissingColumns() {
        #expect(
            throws: PriceListErrors([
                PriceListError(line: 1, message: "unknown column 'price'; expected: \(PriceListCSV.columns.joined(separator: ", "))"),
                PriceListError(line: 1, message: "missing required column 'input_per_1m'"),
                PriceListError(line: 1, message: "missing required column 'output_per_1m'"),
            ])
        ) { try PriceListCSV.parse("model,currency,effective_from,price\ngpt-4o,USD,2026-10-01,1\n") }
    }
}

@Suite struct CSVTests {
    @Test(arguments: [
        ("=SUM(A1)", "'=SUM(A1)"), ("+1", "'+1"), ("-2", "'-2"), ("@cmd", "'@cmd"), ("plain", "plain"), ("a,b", "\"a,b\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""), ("=a,b", "\"'=a,b\""),
    ])
    func textCellsAreNeutralisedAndQuoted(value: String, expected: String) {
        #expect(CSV.text(value) == expected)
    }

    @Test func readsQuotedFieldsAcrossLines() throws {
        let records = try CSV.parse("a,\"b\nc\",\"d\"\"e\"\r\nf,g,h\n")
        #expect(records == [CSV.Record(line: 1, fields: ["a", "b\nc", "d\"e"]), CSV.Record(line: 3, fields: ["f", "g", "h"])])
    }
}
