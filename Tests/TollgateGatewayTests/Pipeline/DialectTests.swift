import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The forward step through each backend kind's dialect: URL, credential, the request rewrite, and the mock's own reply.
@Suite struct DialectTests {
    /// `request` identified, its backend chosen and forwarded by a `ForwardStep` with the fixture's credentials.
    static func forwarded(
        _ fixture: PipelineFixture, _ path: String = "/v1/chat/completions", headers: HTTPFields = [:], body: String,
        credentials: [String: String] = PipelineFixture.credentials
    ) throws -> ProxyRequest {
        var request = try fixture.identified(path, headers: headers, body: body)
        _ = try ChooseBackendStep().run(&request)
        _ = try ForwardStep(credentials: credentials, targets: UpstreamTargetCache(), logger: PipelineFixture.logger).run(&request)
        return request
    }

    static func upstream(_ request: ProxyRequest) throws -> (UpstreamTarget, HTTPHeaders, String) {
        guard case .upstream(let target, let headers, let body) = try #require(request.forwarding) else {
            Issue.record("not forwarded upstream")
            throw CancellationError()
        }
        return (target, headers, String(buffer: body))
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func openAIGetsTheUpstreamModelABearerCredentialAndTheClientsHeadersLessItsOwn() async throws {
        let fixture = await PipelineFixture()
        let request = try Self.forwarded(
            fixture, headers: [.init("OpenAI-Organization")!: "org-1", .cookie: "c=1", .xRequestID: "client-id"],
            body: #"{"model":"gpt-4o-mini","messages":[],"temperature":0.5}"#)
        let (target, headers, body) = try Self.upstream(request)
        #expect(target == UpstreamTarget(url: "https://api.example.test/v1/chat/completions"))
        #expect(headers["authorization"] == ["Bearer sk-openai"])
        #expect(headers["openai-organization"] == ["org-1"])
        #expect(headers["cookie"].isEmpty && headers["x-request-id"].isEmpty && headers["api-key"].isEmpty)
        #expect(headers["accept-encoding"] == ["identity"])
        #expect(body == #"{"model":"gpt-4o-mini-2024-07-18","messages":[],"temperature":0.5}"#)
        #expect(request.choice?.injectedUsage == false)
    }

    @Test func aStreamIsAskedToReportUsageAndToldToHideItWhenTheClientDidNotAsk() async throws {
        let fixture = await PipelineFixture()
        let injected = try Self.forwarded(fixture, body: #"{"model":"gpt-4o-mini","stream":true}"#)
        let options = try Self.json(try Self.upstream(injected).2)["stream_options"] as? [String: Any]
        #expect(options?["include_usage"] as? Bool == true)
        #expect(injected.choice?.injectedUsage == true)

        let asked = try Self.forwarded(fixture, body: #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(asked.choice?.injectedUsage == false)
        // Embeddings never stream usage chunks: nothing to inject.
        let embeddings = try Self.forwarded(fixture, "/v1/embeddings", body: #"{"model":"gpt-4o-mini","stream":true,"input":"x"}"#)
        #expect(embeddings.choice?.injectedUsage == false)
    }

    @Test func azureGetsTheDeploymentURLWithTheApiVersionAndAnApiKey() async throws {
        let fixture = await PipelineFixture()
        let fromClient = try Self.forwarded(fixture, "/openai/deployments/chat-prod/chat/completions?api-version=2025-01-01", body: #"{"messages":[]}"#)
        let (target, headers, body) = try Self.upstream(fromClient)
        #expect(target == UpstreamTarget(url: "https://azure.example.test/openai/deployments/chat-prod/chat/completions?api-version=2025-01-01"))
        #expect(headers["api-key"] == ["azure-secret"] && headers["authorization"].isEmpty)
        #expect(body == #"{"messages":[]}"#)  // the deployment names the model: the body is not touched

        let fromBackend = try Self.forwarded(fixture, body: #"{"model":"chat-prod"}"#)
        #expect(try Self.upstream(fromBackend).0 == UpstreamTarget(url: "https://azure.example.test/openai/deployments/chat-prod/chat/completions?api-version=2024-06-01"))
        #expect(try Self.upstream(fromBackend).2 == #"{"model":"chat-prod"}"#)

        var document = PipelineFixture.document
        document.backends[1].apiVersion = nil
        let defaulted = try Self.forwarded(await PipelineFixture(document: document), "/v1/responses", body: #"{"model":"chat-prod"}"#)
        #expect(try Self.upstream(defaulted).0 == UpstreamTarget(url: "https://azure.example.test/openai/responses?api-version=2024-10-21"))
    }

    @Test func aMissingCredentialIsABackendMisconfiguration() async throws {
        let fixture = await PipelineFixture()
        var request = try fixture.identified(body: #"{"model":"gpt-4o-mini"}"#)
        _ = try ChooseBackendStep().run(&request)
        let step = ForwardStep(credentials: [:], targets: UpstreamTargetCache(), logger: PipelineFixture.logger)
        let error = refusal { try step.run(&request) }
        #expect(error?.code == "backend_misconfigured" && error?.status == .badGateway)
        #expect(request.forwarding == nil)
    }

    @Test func theMockAnswersItselfWithUsageAndItsLatency() async throws {
        var document = PipelineFixture.document
        document.backends[2].mockLatencyMilliseconds = 25
        let fixture = await PipelineFixture(document: document)
        let whole = try Self.forwarded(fixture, body: #"{"model":"mock-model","messages":[{"role":"user","content":"Say hello there!"}]}"#)
        guard case .local(.whole(let head, let body), let delay) = try #require(whole.forwarding) else {
            Issue.record("expected a whole local reply")
            return
        }
        #expect(delay == 25 && head.status == .ok)
        #expect(head.headerFields[.xRequestID] == whole.requestID.lowercasedString)
        let usage = try #require(JSONObjectReader(document: Array(body.readableBytesView)).flatMap(MockDialect().usage(ofReply:)))
        #expect(usage.promptTokens == 4 && usage.completionTokens == 14)

        let stream = try Self.forwarded(fixture, body: #"{"model":"mock-model","stream":true,"messages":[]}"#)
        guard case .local(.stream(let streamHead, let events), _) = try #require(stream.forwarding) else {
            Issue.record("expected a streamed local reply")
            return
        }
        #expect(streamHead.headerFields[.contentType] == "text/event-stream")
        #expect(events.last.map { String(buffer: $0) }?.contains("[DONE]") == true)
    }
}
