import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// Authenticate → resolve the caller → check access, on an in-memory catalog.
@Suite struct IdentificationStepTests {
    @Test func eachKeyHeaderIsAcceptedAndTheKeysSubscriptionResolved() async throws {
        let fixture = await PipelineFixture()
        let key = try #require(fixture.keys["sub-a"])
        for headers: HTTPFields in [[.authorization: "Bearer \(key)"], [.apiKey: key], [.apimSubscriptionKey: key]] {
            var request = try PipelineFixture.request(headers: headers)
            guard case .next = try AuthenticateStep(catalog: fixture.catalog).run(&request) else { Issue.record("not authenticated"); continue }
            #expect(request.key?.subscription == "sub-a")
            _ = try ResolveCallerStep().run(&request)
            #expect(request.subscription?.id == "sub-a")
            #expect(request.subscription?.team == "team-a")
            #expect(request.limits == ProductLimits(tokensPerMinute: 40, tokenQuota: 100, quotaPeriod: .monthly))
        }
    }

    @Test func aSubscriptionWithoutProductHasNoLimits() async throws {
        let request = try await PipelineFixture().identified(subscription: "sub-c")
        #expect(request.subscription?.id == "sub-c")
        #expect(request.limits == nil)
    }

    @Test func noKeyAndAnUnknownKeyAreRefused() async throws {
        let fixture = await PipelineFixture()
        var missing = try PipelineFixture.request()
        #expect(refusal { try AuthenticateStep(catalog: fixture.catalog).run(&missing) }?.code == "missing_api_key")
        var blank = try PipelineFixture.request(headers: [.authorization: "Bearer    "])
        #expect(refusal { try AuthenticateStep(catalog: fixture.catalog).run(&blank) }?.code == "missing_api_key")
        var unknown = try PipelineFixture.request(key: "tgk_not-a-real-key")
        let error = refusal { try AuthenticateStep(catalog: fixture.catalog).run(&unknown) }
        #expect(error?.code == "invalid_api_key" && error?.status == .unauthorized)
    }

    @Test func anUnknownKeyOnAStaleCatalogReloadsItOnceThenDecides() async throws {
        let fixture = await PipelineFixture(missRefreshInterval: .zero)
        let step = AuthenticateStep(catalog: fixture.catalog)
        // Created behind the gateway's back, as on another instance.
        let key = fixture.repository.createKey(for: "sub-c", slot: "secondary")
        var request = try PipelineFixture.request(key: key)
        let loadsBefore = fixture.repository.loads
        guard case .retry(let work) = try step.run(&request) else { Issue.record("expected a reload first"); return }
        await work()
        #expect(fixture.repository.loads == loadsBefore + 1)
        guard case .next = try step.run(&request) else { Issue.record("expected the key to be found"); return }
        #expect(request.key?.subscription == "sub-c" && request.key?.slot == "secondary")

        // A key no reload knows: one reload, then refused (never a second reload for the same request).
        var unknown = try PipelineFixture.request(key: "tgk_unknown")
        guard case .retry(let reload) = try step.run(&unknown) else { Issue.record("expected a reload first"); return }
        await reload()
        #expect(refusal { try step.run(&unknown) }?.code == "invalid_api_key")
    }

    @Test func aKeyWhoseSubscriptionIsGoneIsInvalid() async throws {
        let fixture = await PipelineFixture()
        var snapshot = fixture.catalog.snapshot
        snapshot.subscriptions["sub-a"] = nil
        fixture.catalog.replace(with: snapshot)
        var request = try PipelineFixture.request(key: fixture.keys["sub-a"])
        _ = try AuthenticateStep(catalog: fixture.catalog).run(&request)
        #expect(refusal { try ResolveCallerStep().run(&request) }?.code == "invalid_api_key")
    }

    @Test func suspendedAndCancelledSubscriptionsAreRefusedWithTheirReason() async throws {
        let fixture = await PipelineFixture()
        var snapshot = fixture.catalog.snapshot
        snapshot.subscriptions["sub-b"]?.stateReason = "Budget review"
        fixture.catalog.replace(with: snapshot)
        var suspended = try PipelineFixture.request(key: fixture.keys["sub-b"])
        _ = try AuthenticateStep(catalog: fixture.catalog).run(&suspended)
        _ = try ResolveCallerStep().run(&suspended)
        let error = refusal { try CheckAccessStep().run(&suspended) }
        #expect(error?.status == .forbidden && error?.code == "subscription_suspended")
        #expect(error?.message.contains("Budget review") == true)

        suspended.subscription?.state = .cancelled
        #expect(refusal { try CheckAccessStep().run(&suspended) }?.code == "subscription_cancelled")
        suspended.subscription?.state = .active
        #expect(refusal { try CheckAccessStep().run(&suspended) } == nil)
    }

    @Test func aStepRunBeforeWhatItNeedsAnswers500InsteadOfCrashing() throws {
        var request = try PipelineFixture.request()
        let error = refusal { try CheckAccessStep().run(&request) }
        #expect(error?.status == .internalServerError && error?.code == "internal_error")
    }
}
