import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// A known October 2026, worked out by hand below; every expected figure is a literal.
///
/// Prices per 1M tokens (USD): gpt-4o 2.50 in / 1.25 cached / 10.00 out until 2026-10-15T00:00Z, then 2.00 / 1.00 / 8.00;
/// o3-mini 1.10 / 0.55 / 4.40, reasoning billed as output; llama-3-70b has no price.
/// Backend azure-ptu carries a 1000.00 USD monthly commitment from October.
///
/// | # | subscription (team)   | model   | backend   | when (UTC)           | prompt (cached) | completion | cost by hand                                  |
/// |---|-----------------------|---------|-----------|----------------------|-----------------|------------|-----------------------------------------------|
/// | 1 | search-prod (search)  | gpt-4o  | openai    | 10-03 10:15          | 1,000,000 (400k)| 200,000    | 0.6×2.50 + 0.4×1.25 + 0.2×10 = 4.00            |
/// | 2 | search-prod           | gpt-4o  | openai    | 10-14 23:59:59       | 100,000         | 10,000     | 0.25 + 0.10 = 0.35 (last second of old price)  |
/// | 3 | search-prod           | gpt-4o  | openai    | 10-15 00:00:00       | 100,000         | 10,000     | 0.20 + 0.08 = 0.28 (first second of new price) |
/// | 4 | chat-prod (chat)      | gpt-4o  | openai    | 10-20 08:00          | 500,000 (500k)  | 50,000     | 0.5×1.00 + 0.05×8 = 0.90                       |
/// | 5 | chat-prod             | o3-mini | openai    | 10-05 12:00          | 10,000          | 20,000 (15k reasoning) | 0.011 + 0.088 = 0.099              |
/// | 6 | chat-prod             | llama-3-70b | openai| 10-07 09:00          | 3,000           | 1,000      | unpriced: listed, never 0                      |
/// | 7 | evil-prod (=HYPERLINK…)| gpt-4o | openai    | 10-02 00:00          | 50,000          | 0          | 0.125 → 0.12 with banker's rounding            |
/// | 8 | search-prod           | gpt-4o  | azure-ptu | 10-10 12:00          | 1,500,000       | 500,000    | PTU: 2/3 of 1000.00 → 666.67                    |
/// | 9 | chat-prod             | gpt-4o  | azure-ptu | 10-10 13:00          | 800,000         | 200,000    | PTU: 1/3 of 1000.00 → 333.33                    |
///
/// By team: search 4.00 + 0.35 + 0.28 = 4.63; chat 0.90 + 0.099 = 0.999 → 1.00; evil 0.125 → 0.12;
/// PTU search 666.67, chat 333.33 (the leftover cent goes to the larger remainder, 666.666…). Total 1005.75.
@Suite(.freshDatabase) struct ChargebackMonthTests {
    static let october = BillingPeriod.month("2026-10")!
    static let november = BillingPeriod.month("2026-11")!
    static let now = Date(iso8601: "2026-11-05T09:00:00Z")!
    static let evilTeam = "=HYPERLINK(\"http://evil.example\",\"x\")"

    static let priceList = """
        model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m
        gpt-4o,,,USD,2026-09-01,2.50,1.25,10.00,
        gpt-4o,,,USD,2026-10-15T00:00:00Z,2.00,1.00,8.00,
        o3-mini,,,USD,2026-09-01,1.10,0.55,4.40,
        """

    static func event(
        _ n: Int, _ subscription: String, _ model: String, _ backend: String, _ at: String, prompt: Int, cached: Int = 0, completion: Int,
        reasoning: Int = 0
    ) -> String {
        """
        {"id":"00000000-0000-7000-8000-\(String(format: "%012d", n))","subscription":"\(subscription)","model":"\(model)","backend":"\(backend)",\
        "timestamp":"\(at)","prompt_tokens":\(prompt),"cached_tokens":\(cached),"completion_tokens":\(completion),"reasoning_tokens":\(reasoning)}
        """
    }

    static let octoberBatch =
        "["
        + [
            event(1, "search-prod", "gpt-4o", "openai", "2026-10-03T10:15:00Z", prompt: 1_000_000, cached: 400_000, completion: 200_000),
            event(2, "search-prod", "gpt-4o", "openai", "2026-10-14T23:59:59Z", prompt: 100_000, completion: 10_000),
            event(3, "search-prod", "gpt-4o", "openai", "2026-10-15T00:00:00Z", prompt: 100_000, completion: 10_000),
            event(4, "chat-prod", "gpt-4o", "openai", "2026-10-20T08:00:00Z", prompt: 500_000, cached: 500_000, completion: 50_000),
            event(5, "chat-prod", "o3-mini", "openai", "2026-10-05T12:00:00Z", prompt: 10_000, completion: 20_000, reasoning: 15_000),
            event(6, "chat-prod", "llama-3-70b", "openai", "2026-10-07T09:00:00Z", prompt: 3_000, completion: 1_000),
            event(7, "evil-prod", "gpt-4o", "openai", "2026-10-02T00:00:00Z", prompt: 50_000, completion: 0),
            event(8, "search-prod", "gpt-4o", "azure-ptu", "2026-10-10T12:00:00Z", prompt: 1_500_000, completion: 500_000),
            event(9, "chat-prod", "gpt-4o", "azure-ptu", "2026-10-10T13:00:00Z", prompt: 800_000, completion: 200_000),
        ].joined(separator: ",\n") + "]"

    static func seed(_ client: PostgresClient) async throws {
        let logger = TestDatabase.logger
        try await CatalogStore(client: client).apply(
            PolicyDocument(
                backends: [BackendSpec(name: "openai", kind: .mock, deployments: [.init(name: "gpt-4o", model: "gpt-4o")])],
                products: [ProductSpec(name: "search"), ProductSpec(name: "chat")],
                subscriptions: [
                    SubscriptionSpec(id: "search-prod", displayName: "Search (prod)", team: "search", costCenter: "CC-100", product: "search"),
                    SubscriptionSpec(id: "chat-prod", team: "chat", costCenter: "CC-200", product: "chat"),
                    SubscriptionSpec(id: "evil-prod", team: evilTeam, costCenter: "-CC-300", product: "chat"),
                ]),
            logger: logger)
        let prices = try PriceListCSV.parse(priceList)
        let summary = try await PriceStore(client: client).importPrices(prices, priceList: "prices-2026.csv", logger: logger)
        #expect(summary == PriceImportSummary(added: 3, unchanged: 0))
        try await PTUStore(client: client).set(
            PTUCommitment(backend: "azure-ptu", effectiveFrom: october.start, monthlyAmount: Decimal(string: "1000.00")!, currency: "USD"),
            logger: logger)
        let first = try await ExternalUsageIngest.ingest(
            body: Data(octoberBatch.utf8), contentType: "application/json", source: "apim-east", now: now, client: client, logger: logger)
        #expect(first.received == 9 && first.accepted == 9 && first.inserted == 9 && first.rejected == 0)
        // The gateway retries the whole batch after a timeout: nothing may be counted twice.
        let replay = try await ExternalUsageIngest.ingest(
            body: Data(octoberBatch.utf8), contentType: "application/json", source: "apim-east", now: now, client: client, logger: logger)
        #expect(replay.inserted == 0)
        #expect(replay.duplicates == 9)
    }

    static let expectedOctoberCSV = """
        period,group_by,group,charge_type,charge_class,model,backend,requests,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,total_tokens,amount,currency\r
        2026-10,team,"'=HYPERLINK(""http://evil.example"",""x"")",usage,regular,,,1,50000,0,0,0,50000,0.12,USD\r
        2026-10,team,chat,usage,regular,,,2,510000,500000,70000,15000,580000,1.00,USD\r
        2026-10,team,search,usage,regular,,,3,1200000,400000,220000,0,1420000,4.63,USD\r
        2026-10,team,chat,ptu,regular,,azure-ptu,1,800000,0,200000,0,1000000,333.33,USD\r
        2026-10,team,search,ptu,regular,,azure-ptu,1,1500000,0,500000,0,2000000,666.67,USD\r
        2026-10,team,chat,unpriced,regular,llama-3-70b,,1,3000,0,1000,0,4000,,\r
        2026-10,team,,total,,,,8,4060000,900000,990000,15000,5050000,1005.75,USD\r

        """

    @Test func octoberByTeamIsExactAndSurvivesCloseAndLateUsage() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await Self.seed(client)
            let report = ChargebackReport(.postgres(client: client))

            let csv = String(
                decoding: try await report.generate(period: Self.october, groupBy: .team, format: .csv, now: Self.now, logger: logger), as: UTF8.self)
            #expect(csv == Self.expectedOctoberCSV)

            // The document's total is the sum of its lines, exactly.
            let document = try await report.document(period: Self.october, groupBy: .team, now: Self.now, logger: logger)
            #expect(document.total == Decimal(string: "1005.75")!)
            #expect(document.lines.compactMap(\.amount).reduce(0, +) == document.total)
            #expect(document.priceLists == ["prices-2026.csv"])
            #expect(document.status == .open)

            // Close October, then a gateway delivers an October event late.
            try await PeriodStore(client: client).close(Self.october, closedBy: "test", now: Self.now, logger: logger)
            let late = """
                {"id":"00000000-0000-7000-8000-000000000100","subscription":"search-prod","model":"gpt-4o","backend":"openai","timestamp":"2026-10-20T09:30:00Z","prompt_tokens":200000,"completion_tokens":20000}
                {"id":"00000000-0000-7000-8000-000000000101","subscription":"search-prod","model":"gpt-4o","backend":"openai","timestamp":"2026-11-02T10:00:00Z","prompt_tokens":100000,"completion_tokens":0}
                """
            let result = try await ExternalUsageIngest.ingest(
                body: Data(late.utf8), contentType: "application/x-ndjson", source: "apim-east", now: Self.now, client: client, logger: logger)
            #expect(result.inserted == 2)
            // The late event counts in its own day of October too, and the daily rollup still sums the hours exactly.
            #expect(try await Rollups.dailyDrift(client, logger: logger) == [])

            // October is frozen: byte for byte the same export.
            let after = String(
                decoding: try await report.generate(period: Self.october, groupBy: .team, format: .csv, now: Self.now, logger: logger), as: UTF8.self)
            #expect(after == Self.expectedOctoberCSV)
            #expect(try await report.document(period: Self.october, groupBy: .team, now: Self.now, logger: logger).status == .closed)

            // November: its own 100,000 prompt tokens at 2.00 = 0.20, the late October usage as a correction at October's
            // price in force on the 20th (0.2×2.00 + 0.02×8.00 = 0.56), and the commitment, unused in November: 1000.00.
            let november = String(
                decoding: try await report.generate(period: Self.november, groupBy: .team, format: .csv, now: Self.now, logger: logger), as: UTF8.self
            )
            #expect(
                november == """
                    period,group_by,group,charge_type,charge_class,model,backend,requests,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,total_tokens,amount,currency\r
                    2026-11,team,search,usage,regular,,,1,100000,0,0,0,100000,0.20,USD\r
                    2026-11,team,(unallocated),ptu,regular,,azure-ptu,0,0,0,0,0,0,1000.00,USD\r
                    2026-11,team,search,usage,correction,,,1,200000,0,20000,0,220000,0.56,USD\r
                    2026-11,team,,total,,,,2,300000,0,20000,0,320000,1000.76,USD\r

                    """)
        }
    }
}
