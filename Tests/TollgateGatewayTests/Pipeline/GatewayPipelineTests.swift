import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The whole request path in order, as the exchange runs it, on an in-memory catalog.
@Suite struct GatewayPipelineTests {
    static func pipeline(_ fixture: PipelineFixture, recorded: RecordedUsage, limiter: TokenLimiter = TokenLimiter()) -> GatewayPipeline {
        .standard(
            catalog: fixture.catalog, limiter: limiter, writer: recorded, metrics: GatewayMetrics(),
            configuration: GatewayConfiguration(credentials: PipelineFixture.credentials), health: BackendHealth(logger: PipelineFixture.logger),
            targets: UpstreamTargetCache(), logger: PipelineFixture.logger)
    }

    @Test func theStepsRunInTheDocumentedOrder() async throws {
        let steps = Self.pipeline(await PipelineFixture(), recorded: RecordedUsage()).steps
        #expect(steps.map { "\(type(of: $0))" } == [
            "AuthenticateStep", "ResolveCallerStep", "CheckAccessStep", "ModelAccessStep", "AdmitStep", "ChooseBackendStep", "ForwardStep", "MeterStep", "SettleStep",
        ])
        // A failover runs again only the steps that choose and address the backend, never the after-reply ones.
        let pipeline = Self.pipeline(await PipelineFixture(), recorded: RecordedUsage())
        #expect(pipeline.steps[pipeline.rerouting].map { "\(type(of: $0))" } == ["ChooseBackendStep", "ForwardStep"])
    }

    @Test func anAdmittedRequestIsForwardedThenMeteredThenSettled() async throws {
        let fixture = await PipelineFixture()
        let recorded = RecordedUsage()
        let limiter = TokenLimiter()
        let pipeline = Self.pipeline(fixture, recorded: recorded, limiter: limiter)
        var request = try PipelineFixture.request(key: fixture.keys["sub-a"], body: #"{"model":"mock-model","messages":[]}"#)
        guard case .forward = pipeline.run(&request) else { Issue.record("not forwarded"); return }
        guard case .local(.whole(_, let body), _) = try #require(request.forwarding) else { Issue.record("not the mock"); return }
        #expect(request.afterReply.map { "\(type(of: $0))" } == ["MeterStep", "SettleStep"])
        var reply = ProxyReply(status: 200, content: .whole(body))
        request.replied(&reply)
        let event = try #require(recorded.events.first)
        #expect(event.usageSource == .reported && event.usage.totalTokens > 0)
        // Settled: the tokens count against the product's 40 tokens a minute.
        LimitTests.serve(limiter, "sub-a", try #require(request.limits), tokens: 40 - event.usage.totalTokens)
        var next = try PipelineFixture.request(key: fixture.keys["sub-a"], body: #"{"model":"mock-model"}"#)
        guard case .refused(let error) = pipeline.run(&next) else { Issue.record("not refused"); return }
        #expect(error.code == "tokens_per_minute_exceeded")
    }

    @Test func aRefusalStopsThePathBeforeAnythingIsForwardedOrRegistered() async throws {
        let fixture = await PipelineFixture()
        let recorded = RecordedUsage()
        let pipeline = Self.pipeline(fixture, recorded: recorded)
        for (key, body, code) in [
            (fixture.keys["sub-b"], #"{"model":"mock-model"}"#, "subscription_suspended"),
            (fixture.keys["sub-a"], #"{"model":"nope"}"#, "model_not_found"),
            (nil, #"{"model":"mock-model"}"#, "missing_api_key"),
        ] {
            var request = try PipelineFixture.request(key: key, body: body)
            guard case .refused(let error) = pipeline.run(&request) else { Issue.record("not refused: \(code)"); continue }
            #expect(error.code == code)
            #expect(request.forwarding == nil && request.afterReply.isEmpty)
        }
        #expect(recorded.events.isEmpty)
    }

    @Test func aStepThatMustWaitSuspendsThePathWhereItStands() async throws {
        let fixture = await PipelineFixture(missRefreshInterval: .zero)
        let pipeline = Self.pipeline(fixture, recorded: RecordedUsage())
        let key = fixture.repository.createKey(for: "sub-c")
        var request = try PipelineFixture.request(key: key, body: #"{"model":"mock-model"}"#)
        guard case .suspended(let resumeAt, let work) = pipeline.run(&request) else { Issue.record("not suspended"); return }
        #expect(resumeAt == 0)
        await work()
        guard case .forward = pipeline.run(&request, from: resumeAt) else { Issue.record("not forwarded after the reload"); return }
        #expect(request.subscription?.id == "sub-c")
    }
}
