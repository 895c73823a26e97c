import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// Choosing the route, backend and dialect from the request.
@Suite struct ChooseBackendStepTests {
    @Test func theBodysModelNamesTheRouteAndTheBackendKindTheDialect() async throws {
        let fixture = await PipelineFixture()
        var request = try fixture.identified(body: #"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#)
        _ = try ChooseBackendStep().run(&request)
        let choice = try #require(request.choice)
        #expect(choice.route.backend == "openai" && choice.route.model == "gpt-4o-mini-2024-07-18")
        #expect(choice.dialect is OpenAIDialect)
        #expect(choice.streamed)

        var azure = try fixture.identified("/openai/deployments/chat-prod/chat/completions?api-version=2024-10-21", body: #"{"messages":[]}"#)
        _ = try ChooseBackendStep().run(&azure)
        #expect(azure.choice?.route.backend == "azure" && azure.choice?.dialect is AzureDialect && azure.choice?.streamed == false)

        var mock = try fixture.identified(body: #"{"model":"mock-model"}"#)
        _ = try ChooseBackendStep().run(&mock)
        #expect(mock.choice?.dialect is MockDialect)
    }

    @Test func anAzurePathsDeploymentWinsOverTheBodysModel() async throws {
        var request = try await PipelineFixture().identified("/openai/deployments/chat-prod/chat/completions", body: #"{"model":"gpt-4o-mini"}"#)
        _ = try ChooseBackendStep().run(&request)
        #expect(request.choice?.route.deployment == "chat-prod")
    }

    @Test func bodiesThatAreNotAnObjectOrNameNoKnownModelAreRefused() async throws {
        let fixture = await PipelineFixture()
        for (body, code, status) in [
            ("[1,2]", "invalid_request", 400), ("not json", "invalid_request", 400), (#"{"messages":[]}"#, "invalid_request", 400),
            (#"{"model":""}"#, "invalid_request", 400), (#"{"model":"gpt-5-unknown"}"#, "model_not_found", 404),
        ] {
            var request = try fixture.identified(body: body)
            let error = refusal { try ChooseBackendStep().run(&request) }
            #expect(error?.code == code && error?.status.code == status, "\(body)")
            #expect(request.choice == nil)
        }
    }

    @Test func escapedKeysAreReadAndForwardedPlain() async throws {
        var request = try await PipelineFixture().identified(body: #"{"mod\u0065l":"gpt-4o-mini","messages":[]}"#)
        _ = try ChooseBackendStep().run(&request)
        #expect(request.choice?.route.deployment == "gpt-4o-mini")
        #expect(String(buffer: request.body).contains(#""model":"gpt-4o-mini""#))
    }
}
