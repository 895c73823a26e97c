import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateCore
import TollgateServer
import TollgateTestSupport

/// `POST /admin/v1/usage-events`: usage from other gateways, validated per event, idempotent on the event id.
@Suite(.freshDatabasePerTest) struct UsageIngestRouteTests {
    @Test func acceptsValidEventsRejectsBadOnesWithReasonsAndIgnoresReplays() async throws {
        _ = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: 1))
        let now = Date().addingTimeInterval(-60).iso8601
        let good = UUIDv7.make().uuidString.lowercased()
        let body = """
            {"id":"\(good)","subscription":"sub-a","model":"gpt-4o","timestamp":"\(now)","prompt_tokens":1200,"completion_tokens":300,"cached_tokens":1000}
            {"id":"\(UUIDv7.make().uuidString.lowercased())","subscription":"nobody","model":"gpt-4o","timestamp":"\(now)","prompt_tokens":-5,"completion_tokens":1}
            """
        let headers: HTTPFields = [.authorization: "Bearer \(GatewayHarness.adminToken)", .contentType: "application/x-ndjson"]
        try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
            try await client.execute(uri: "/admin/v1/usage-events?source=apim-westeurope", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .ok)
                let result = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(result?["accepted"] as? Int == 1)
                #expect(result?["inserted"] as? Int == 1)
                #expect(result?["rejected"] as? Int == 1)
                let reasons = ((result?["rejections"] as? [[String: Any]])?.first?["reasons"] as? [String]) ?? []
                #expect(reasons.contains { $0.contains("nobody") } && reasons.contains { $0.contains("prompt_tokens") })
            }
            // The same batch again: nothing new.
            try await client.execute(uri: "/admin/v1/usage-events?source=apim-westeurope", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                let result = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                #expect(result?["inserted"] as? Int == 0)
                #expect(result?["duplicates"] as? Int == 1)
            }
            try await client.execute(uri: "/admin/v1/usage-events", method: .post, headers: headers, body: ByteBuffer(string: "not json")) { response in
                // Every event refused: 422, each with its reason.
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("line 1 is not a JSON object"))
            }
        }
        let rows = try await GatewayHarness.usageRows()
        #expect(rows.count == 1)
        #expect(rows.first?.subscription == "sub-a" && rows.first?.promptTokens == 1200 && rows.first?.cachedTokens == 1000)
        #expect(rows.first?.backend == "apim-westeurope")
        // Counted once in the daily rollup, the replay included.
        try await TestDatabase.withClient { client async throws in
            #expect(
                try await Array(Rollups.daily(client, subscription: "sub-a", logger: TestDatabase.logger).values) == [
                    Rollups.Totals(requests: 1, prompt: 1200, completion: 300, total: 1500, cached: 1000, reasoning: 0)
                ])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }
}
