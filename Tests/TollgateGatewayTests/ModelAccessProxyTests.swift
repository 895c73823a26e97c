import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateCore
import TollgateGateway
import TollgateServer
import TollgateStore
import TollgateTestSupport

/// `allowed_models` end to end: a live Tollgate on PostgreSQL in front of the fake upstream.
@Suite(.freshDatabasePerTest) struct ModelAccessProxyTests {
    /// The harness's document with the `standard` product allowed three deployments, and sub-b narrowed to one of them.
    static func document(upstreamPort: Int) -> PolicyDocument {
        var document = GatewayHarness.document(upstreamPort: upstreamPort)
        document.products[0].allowedModels = ["gpt-4o-mini", "gpt4o-*", "text-embedding-*"]
        document.subscriptions[1].allowedModels = ["gpt4o-prod"]
        return document
    }

    static func errorCode(_ body: ByteBuffer) -> (code: String?, message: String?) {
        let error = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? [String: Any]
        return (error?["code"] as? String, error?["message"] as? String)
    }

    @Test func aRefusedDeploymentReachesNoUpstreamAndAnAllowedOneIsForwardedAndMetered() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                // Served by the fake upstream, but not in the product's list.
                try await client.execute(
                    uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(#"{"model":"no-usage","messages":[]}"#)
                ) { response in
                    #expect(response.status == .forbidden)
                    let (code, message) = Self.errorCode(response.body)
                    #expect(code == "model_not_allowed")
                    #expect(message?.contains("'no-usage'") == true)
                }
                // In the product's list, not in sub-b's.
                try await client.execute(
                    uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-b"]!), body: .json(#"{"model":"gpt-4o-mini","messages":[]}"#)
                ) { response in
                    #expect(response.status == .forbidden)
                    #expect(Self.errorCode(response.body).code == "model_not_allowed")
                }
                await runtime.writer.flush()
                #expect(upstream.requests.count == 0)

                try await client.execute(
                    uri: "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-06-01", method: .post, headers: .bearer(keys["sub-b"]!),
                    body: .json(#"{"messages":[{"role":"user","content":"hi"}]}"#)
                ) { response in
                    #expect(response.status == .ok)
                }
                try await client.execute(
                    uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!),
                    body: .json(#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
                ) { response in
                    #expect(response.status == .ok)
                }
                await runtime.writer.flush()
            }
            #expect(upstream.requests.map(\.path) == ["/openai/deployments/gpt4o-prod/chat/completions", "/v1/chat/completions"])
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.subscription) == ["sub-b", "sub-a"])
            #expect(rows.map(\.deployment) == ["gpt4o-prod", "gpt-4o-mini"])
            #expect(rows.map(\.totalTokens) == [18, 18])
        }
    }

    @Test func modelsListsOnlyWhatTheCallerMayUse() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(Self.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
                var listed: [String: [String]] = [:]
                for subscription in ["sub-a", "sub-b"] {
                    listed[subscription] = try await client.execute(uri: "/v1/models", method: .get, headers: .bearer(keys[subscription]!)) { response in
                        #expect(response.status == .ok)
                        let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
                        return (body?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                    }
                }
                #expect(listed["sub-a"] == ["gpt-4o-mini", "gpt4o-prod", "text-embedding-3-small"])
                #expect(listed["sub-b"] == ["gpt4o-prod"])
            }
        }
    }
}
