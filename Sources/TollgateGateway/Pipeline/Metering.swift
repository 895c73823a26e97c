import Foundation
import TollgateCore
import TollgateStore

/// What a usage row needs to know about the request, gathered from the pipeline's decisions.
struct Metering {
    var requestID: UUID
    var startedAt: Date
    var subscription: CatalogSnapshot.Subscription
    var backend: String
    var deployment: String
    var requestedModel: String
    var operation: OpenAIOperation
    var streamed: Bool
    /// The request as forwarded.
    var requestBody: [UInt8]

    init(request: ProxyRequest, choice: BackendChoice, subscription: CatalogSnapshot.Subscription, operation: OpenAIOperation) {
        requestID = request.requestID
        startedAt = request.startedAt
        self.subscription = subscription
        backend = choice.backend.name
        deployment = choice.route.deployment
        requestedModel = choice.route.model
        self.operation = operation
        streamed = choice.streamed
        requestBody = choice.forwardedBytes
    }

    /// The request's prompt tokens by the tokenizer of the route's model; used only when the upstream reports no usage.
    var estimatedPromptTokens: Int { UsageExtraction.estimatedPromptTokens(requestBody: requestBody, model: requestedModel) }

    /// The tokens of the text a stream delivered before it ended without usage, by the tokenizer of the model the
    /// stream named (else the route's); one a content chunk if the text cannot be counted.
    func estimatedCompletionTokens(_ meter: SSEStreamMeter) -> Int {
        guard meter.contentEvents > 0 else { return 0 }
        return UsageExtraction.tokens(of: meter.generated, model: meter.model ?? requestedModel) ?? meter.contentEvents
    }

    func event(status: Int, responseID: String?, model: String?, usage: TokenUsage, source: UsageSource) -> UsageEvent {
        UsageEvent(
            requestID: requestID, responseID: responseID, startedAt: startedAt, endedAt: Date(), subscription: subscription.id,
            product: subscription.product, team: subscription.team, costCenter: subscription.costCenter, backend: backend,
            deployment: deployment, model: model ?? requestedModel, route: operation.rawValue, httpStatus: status, streamed: streamed,
            usage: usage, usageSource: source)
    }
}
