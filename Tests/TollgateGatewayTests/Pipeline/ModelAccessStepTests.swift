import Foundation
import HTTPTypes
import NIOCore
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The model-access step on an in-memory catalog: `allowed_models` of the product and of the subscription.
@Suite struct ModelAccessStepTests {
    /// `PipelineFixture.document` with the `limited` product allowed `gpt-4o*` and `chat-*`, sub-a narrowed to `*-mini`,
    /// and sub-d on the product with no list of its own; sub-c (no product) stays unrestricted.
    static let document: PolicyDocument = {
        var document = PipelineFixture.document
        document.products[0].allowedModels = ["gpt-4o*", "chat-*"]
        document.subscriptions[0].allowedModels = ["*-mini"]
        document.subscriptions.append(SubscriptionSpec(id: "sub-d", team: "team-d", product: "limited"))
        return document
    }()

    static func run(_ fixture: PipelineFixture, _ path: String = "/v1/chat/completions", subscription: SubscriptionID, model: String) throws -> GatewayError? {
        var request = try fixture.identified(path, subscription: subscription, body: #"{"model":"\#(model)","messages":[]}"#)
        return refusal { try ModelAccessStep().run(&request) }
    }

    @Test func theProductListRestrictsItsSubscriptions() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        #expect(try Self.run(fixture, subscription: "sub-d", model: "gpt-4o-mini") == nil)
        #expect(try Self.run(fixture, "/openai/deployments/chat-prod/chat/completions?api-version=2024-06-01", subscription: "sub-d", model: "ignored") == nil)
        let error = try #require(try Self.run(fixture, subscription: "sub-d", model: "mock-model"))
        #expect(error.status == .forbidden && error.code == "model_not_allowed" && error.type == "invalid_request_error")
        #expect(error.message.contains("'mock-model'") && error.message.contains("sub-d"))
    }

    @Test func aSubscriptionListNarrowsItsProductsNeverWidensIt() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        #expect(try Self.run(fixture, subscription: "sub-a", model: "gpt-4o-mini") == nil)
        // Allowed by the product, not by sub-a's `*-mini`.
        #expect(try Self.run(fixture, "/openai/deployments/chat-prod/chat/completions?api-version=2024-06-01", subscription: "sub-a", model: "x")?.code
            == "model_not_allowed")
    }

    @Test func theAzurePathsDeploymentIsWhatIsCheckedNotTheBodysModel() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        // The body says an allowed name; the path (which routes the request) names a refused one.
        let error = try Self.run(fixture, "/openai/deployments/mock-model/chat/completions?api-version=2024-06-01", subscription: "sub-d", model: "gpt-4o-mini")
        #expect(error?.code == "model_not_allowed" && error?.message.contains("'mock-model'") == true)
    }

    @Test func aModelKeySpelledWithEscapesIsCheckedToo() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        var request = try fixture.identified(subscription: "sub-d", body: #"{"mod\u0065l":"mock-model","messages":[]}"#)
        #expect(refusal { try ModelAccessStep().run(&request) }?.code == "model_not_allowed")
    }

    @Test func withoutListsEverythingPasses() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        #expect(try Self.run(fixture, subscription: "sub-c", model: "mock-model") == nil)
        #expect(try Self.run(fixture, subscription: "sub-c", model: "not-even-configured") == nil)  // ChooseBackendStep's 404
        let plain = await PipelineFixture()
        #expect(try Self.run(plain, subscription: "sub-a", model: "mock-model") == nil)
    }

    @Test func aRefusedRequestIsNeitherForwardedNorCounted() async throws {
        let fixture = await PipelineFixture(document: Self.document)
        let recorded = RecordedUsage()
        let limiter = TokenLimiter()
        let pipeline = GatewayPipelineTests.pipeline(fixture, recorded: recorded, limiter: limiter)
        var request = try PipelineFixture.request(key: fixture.keys["sub-d"], body: #"{"model":"mock-model","messages":[]}"#)
        guard case .refused(let error) = pipeline.run(&request) else { Issue.record("not refused"); return }
        #expect(error.code == "model_not_allowed")
        #expect(request.choice == nil && request.forwarding == nil && request.afterReply.isEmpty)
        #expect(recorded.events.isEmpty)

        // The same caller on an allowed deployment goes through to the end.
        var allowed = try PipelineFixture.request(key: fixture.keys["sub-d"], body: #"{"model":"gpt-4o-mini","messages":[]}"#)
        guard case .forward = pipeline.run(&allowed) else { Issue.record("not forwarded"); return }
        #expect(allowed.choice?.route.deployment == "gpt-4o-mini")
    }
}
