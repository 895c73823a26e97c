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

/// Keys and subscription states: refused requests get the OpenAI error shape and are never forwarded.
@Suite(.freshDatabasePerTest) struct AuthenticationTests {
    private func error(_ response: TestResponse) throws -> OpenAIErrorEnvelope.Body {
        try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
    }

    @Test func missingWrongRevokedAndSuspendedKeysAreRefusedAndNothingIsForwarded() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            let body = ByteBuffer.json(#"{"model":"gpt-4o-mini","messages":[]}"#)
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: [.contentType: "application/json"], body: body) { response in
                    #expect(response.status == .unauthorized)
                    let error = try error(response)
                    #expect(error.code == "missing_api_key")
                }
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer("tgk_not-a-real-key"), body: body) { response in
                    #expect(response.status == .unauthorized)
                    let error = try error(response)
                    #expect(error.code == "invalid_api_key" && error.type == "invalid_request_error")
                }

                // Revoke sub-a's key through the admin API: refused at once.
                let admin: HTTPFields = [.authorization: "Bearer \(GatewayHarness.adminToken)"]
                let prefix = KeyStore.prefix(of: keys["sub-a"]!)
                try await client.execute(uri: "/admin/v1/keys/\(prefix)", method: .delete, headers: admin) { #expect($0.status == .ok) }
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: body) { response in
                    #expect(response.status == .unauthorized)
                }

                // Suspend sub-b: 403 with the reason, in the OpenAI shape.
                try await client.execute(
                    uri: "/admin/v1/subscriptions/sub-b", method: .patch, headers: admin + [.contentType: "application/json"],
                    body: .json(#"{"state":"suspended","reason":"Budget review","actor":"alice"}"#)
                ) { #expect($0.status == .ok) }
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-b"]!), body: body) { response in
                    #expect(response.status == .forbidden)
                    let error = try error(response)
                    #expect(error.code == "subscription_suspended")
                    #expect(error.message.contains("Budget review"))
                }
                await runtime.writer.flush()
            }
            #expect(upstream.requests.isEmpty)
            #expect(try await GatewayHarness.usageRows().isEmpty)
        }
    }

    @Test func aKeyCreatedOnAnotherInstanceWorksAtOnce() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            _ = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, _ in
                // Created behind the gateway's back, as `tollgate keys create` on another machine would.
                let key = try await TestDatabase.withClient { try await KeyStore(client: $0).create(for: "sub-b", slot: .secondary, logger: TestDatabase.logger).key }
                try await Task.sleep(for: .milliseconds(1100))  // past the miss-refresh interval
                try await client.execute(
                    uri: "/v1/chat/completions", method: .post, headers: .bearer(key), body: .json(#"{"model":"mock-model","messages":[]}"#)
                ) { #expect($0.status == .ok) }
            }
        }
    }

    @Test func adminAPIRequiresItsToken() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            _ = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
                try await client.execute(uri: "/admin/v1/subscriptions", method: .get, headers: [.authorization: "Bearer wrong-token"]) { response in
                    #expect(response.status == .unauthorized)
                    #expect(String(buffer: response.body).contains(#""code":"unauthorized""#))
                }
                try await client.execute(uri: "/admin/v1/subscriptions", method: .get, headers: [.authorization: "Bearer \(GatewayHarness.adminToken)"]) { response in
                    #expect(response.status == .ok)
                    #expect(String(buffer: response.body).contains(#""id":"sub-a""#))
                }
            }
        }
    }
}
