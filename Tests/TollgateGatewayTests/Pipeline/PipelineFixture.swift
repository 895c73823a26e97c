import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// A catalog in memory and requests made by hand, for the pipeline's steps without PostgreSQL or sockets.
struct PipelineFixture {
    static let logger = Logger(label: "pipeline-tests")

    /// openai (credential in `OPENAI_KEY`), azure (credential in `AZURE_KEY`), mock; sub-a active on the `limited`
    /// product, sub-b suspended, sub-c active without a product.
    static let document = PolicyDocument(
        backends: [
            BackendSpec(name: "openai", kind: .openai, baseURL: "https://api.example.test/v1/", credentialEnv: "OPENAI_KEY",
                        deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini-2024-07-18")]),
            BackendSpec(name: "azure", kind: .azure, baseURL: "https://azure.example.test", credentialEnv: "AZURE_KEY", apiVersion: "2024-06-01",
                        deployments: [DeploymentSpec(name: "chat-prod", model: "gpt-4o")]),
            BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "mock-model", model: "mock-model")]),
        ],
        products: [ProductSpec(name: "limited", limits: ProductLimits(tokensPerMinute: 40, tokenQuota: 100, quotaPeriod: .monthly))],
        subscriptions: [
            SubscriptionSpec(id: "sub-a", team: "team-a", product: "limited"),
            SubscriptionSpec(id: "sub-b", state: .suspended),
            SubscriptionSpec(id: "sub-c"),
        ])
    static let credentials = ["OPENAI_KEY": "sk-openai", "AZURE_KEY": "azure-secret"]

    let repository: InMemoryCatalogSnapshotRepository
    let catalog: GatewayCatalog
    /// Keys by subscription.
    let keys: [SubscriptionID: String]

    /// The catalog loaded from `document` (with a key per subscription), `missRefreshInterval` as given.
    init(document: PolicyDocument = Self.document, missRefreshInterval: Duration = .seconds(1)) async {
        repository = InMemoryCatalogSnapshotRepository(document: document)
        var keys: [SubscriptionID: String] = [:]
        for subscription in document.subscriptions { keys[subscription.id] = repository.createKey(for: subscription.id) }
        self.keys = keys
        catalog = GatewayCatalog(store: repository, logger: Self.logger, missRefreshInterval: missRefreshInterval)
        await catalog.refresh()
        // As `buildApplication` does before it serves: the request path counts with the tokenizer only once loaded.
        await TokenizerWarmUp.start().value
    }

    /// A proxied request as the channel handler would hand it over.
    static func request(
        _ path: String = "/v1/chat/completions", key: String? = nil, headers extra: HTTPFields = [:], body: String = #"{"model":"gpt-4o-mini","messages":[]}"#
    ) throws -> ProxyRequest {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        let head = HTTPRequest(method: .post, scheme: nil, authority: "gateway.test", path: path, headerFields: headers)
        let call = try #require(ProxyCall(head))
        return ProxyRequest(call: call, body: ByteBuffer(string: body))
    }

    /// `request` run through the identification steps (authenticated, resolved, access checked).
    func identified(_ path: String = "/v1/chat/completions", subscription: SubscriptionID = "sub-a", headers: HTTPFields = [:], body: String = #"{"model":"gpt-4o-mini","messages":[]}"#) throws -> ProxyRequest {
        var request = try Self.request(path, key: keys[subscription], headers: headers, body: body)
        for step in GatewayPipeline.identification(catalog: catalog) { _ = try step.run(&request) }
        return request
    }
}

/// Usage rows as the meter step hands them over.
final class RecordedUsage: UsageRecorder {
    private let recorded = Mutex<[UsageEvent]>([])
    var events: [UsageEvent] { recorded.withLock { $0 } }
    func record(_ event: UsageEvent) { recorded.withLock { $0.append(event) } }
}

/// The `GatewayError` a step (or a limit) refused with; nil when it did not refuse.
func refusal(_ body: () throws -> StepOutcome) -> GatewayError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error as? GatewayError
    }
}
