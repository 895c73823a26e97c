import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PostgresNIO
import Testing
import TollgateCore
import TollgateServer
import TollgateStore
import TollgateTestSupport

/// Prices and commitments from tollgate.yaml and the admin API.
@Suite(.freshDatabasePerTest) struct PricingPolicyTests {
    static let yaml = """
        backends:
          - name: azure-ptu
            kind: mock
            models: [gpt-4o]
        prices:
          - model: gpt-4o
            currency: USD
            effective_from: 2026-10-01
            input_per_1m: 2.50
            cached_input_per_1m: "1.25"
            output_per_1m: 10.00
        commitments:
          - backend: azure-ptu
            effective_from: 2026-10
            monthly_amount: 12000.00
            currency: USD
        """

    @Test func pricesAreReadExactlyAndApplyIsIdempotent() async throws {
        let document = try PolicyFile.parse(Self.yaml, file: "tollgate.yaml")
        let price = try #require(document.prices.first?.modelPrice)
        #expect(price.inputPerMillion == Decimal(string: "2.5")!)
        #expect(price.cachedInputPerMillion == Decimal(string: "1.25")!)
        #expect(price.effectiveFrom == Date(iso8601: "2026-10-01T00:00:00Z"))
        try await TestDatabase.withClient { client in
            let policy = PolicyApplier(repositories: .postgres(client: client))
            try await policy.apply(document, logger: TestDatabase.logger)
            try await policy.apply(document, logger: TestDatabase.logger)  // again: nothing new
            #expect(try await policy.plan(document, logger: TestDatabase.logger).isEmpty)
            let stored = try await PriceStore(client: client).list(logger: TestDatabase.logger)
            #expect(stored.count == 1)
            #expect(stored.first?.price.outputPerMillion == Decimal(string: "10")!)
            let october = BillingPeriod.month("2026-10")!
            let commitments = try await PTUStore(client: client).commitments(in: october, logger: TestDatabase.logger)
            #expect(commitments.map(\.monthlyAmount) == [Decimal(string: "12000")!])
        }
    }

    @Test(arguments: [
        ("effective_from: 2026-10-01", "effective_from: 2026-10-01T00:30:00Z", "tollgate.yaml:6:5: prices[0]: effective_from must be on a whole UTC hour"),
        ("input_per_1m: 2.50", "input_per_1m: 2.5e0", "tollgate.yaml:9:19: prices[0].input_per_1m: must be a plain decimal amount"),
        ("  - backend: azure-ptu", "  - backend: nowhere", "tollgate.yaml:13:14: commitments[0].backend: unknown backend 'nowhere'"),
    ])
    func badPricesAreRefusedWithTheirPlace(original: String, replacement: String, expectedPrefix: String) {
        let text = Self.yaml.replacingOccurrences(of: original, with: replacement)
        #expect {
            _ = try PolicyFile.parse(text, file: "tollgate.yaml")
        } throws: { error in
            (error as? PolicyFileError)?.description.hasPrefix(expectedPrefix) ?? false
        }
    }

    @Test func adminAPIImportsAndListsPriceLists() async throws {
        var configuration = try await GatewayHarness.configuration()
        configuration.port = 0
        try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
            let admin: HTTPFields = [.authorization: "Bearer \(GatewayHarness.adminToken)"]
            let csv = """
                model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m
                gpt-4o-mini,,,USD,2026-10-01,0.15,0.075,0.60,
                """
            try await client.execute(uri: "/admin/v1/prices?price_list=october", method: .post, headers: admin, body: ByteBuffer(string: csv)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""added":1"#))
            }
            try await client.execute(uri: "/admin/v1/prices", method: .get, headers: admin) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("gpt-4o-mini"))
                #expect(String(buffer: response.body).contains("0.075"))
            }
            let bad = "model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m\nx,,,usd,2026-10-01,1,,1,\n"
            try await client.execute(uri: "/admin/v1/prices", method: .post, headers: admin, body: ByteBuffer(string: bad)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("line 2"))
            }
        }
    }
}
