import Foundation

/// Where a usage row's token counts came from.
public enum UsageSource: String, Hashable, Sendable, Codable, CaseIterable {
    /// The upstream reported them (the `usage` object of the response or the final stream chunk).
    case reported
    /// The upstream reported nothing; Tollgate counted what it could see (for example streamed chunks before a disconnect).
    case estimated
    /// Nothing to count from: recorded so the request is never a silent zero.
    case missing
}

/// Token counts of one request, as OpenAI's `usage` object names them.
public struct TokenUsage: Hashable, Sendable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    /// `prompt_tokens_details.cached_tokens`: part of `promptTokens`, billed at the cached-input price.
    public var cachedPromptTokens: Int
    /// `completion_tokens_details.reasoning_tokens`: part of `completionTokens`.
    public var reasoningTokens: Int

    public init(promptTokens: Int = 0, completionTokens: Int = 0, totalTokens: Int? = nil, cachedPromptTokens: Int = 0, reasoningTokens: Int = 0) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens ?? (promptTokens + completionTokens)
        self.cachedPromptTokens = cachedPromptTokens
        self.reasoningTokens = reasoningTokens
    }

    public static let zero = TokenUsage()

    /// Counts must be non-negative, and the parts no larger than their wholes.
    public var problems: [String] {
        var problems: [String] = []
        for (name, value) in [("prompt_tokens", promptTokens), ("completion_tokens", completionTokens), ("total_tokens", totalTokens),
                              ("cached_tokens", cachedPromptTokens), ("reasoning_tokens", reasoningTokens)] where value < 0 {
            problems.append("\(name) must not be negative")
        }
        if cachedPromptTokens > promptTokens { problems.append("cached_tokens must not exceed prompt_tokens") }
        if reasoningTokens > completionTokens { problems.append("reasoning_tokens must not exceed completion_tokens") }
        return problems
    }
}

/// One metered request: the row the gateway writes to `usage_events`.
public struct UsageEvent: Hashable, Sendable, Codable {
    /// Minted by the gateway (UUIDv7) and returned to the client as `x-request-id`; retries of a write reuse it.
    public var requestID: UUID
    /// The upstream's own id (`chatcmpl-…`), when it sent one.
    public var responseID: String?
    public var startedAt: Date
    public var endedAt: Date
    public var subscription: SubscriptionID
    public var product: String?
    public var team: String?
    public var costCenter: String?
    public var backend: String
    public var deployment: String?
    /// The model the upstream says it used; the requested one when the upstream did not say.
    public var model: String
    /// `chat.completions`, `completions`, `embeddings`, `responses`.
    public var route: String
    public var httpStatus: Int
    public var streamed: Bool
    public var usage: TokenUsage
    public var usageSource: UsageSource
    /// `gateway` for Tollgate's own traffic, or the name of the gateway that sent the event to the ingest API.
    public var source: String

    public init(
        requestID: UUID, responseID: String? = nil, startedAt: Date, endedAt: Date, subscription: SubscriptionID,
        product: String? = nil, team: String? = nil, costCenter: String? = nil, backend: String, deployment: String? = nil,
        model: String, route: String, httpStatus: Int, streamed: Bool, usage: TokenUsage, usageSource: UsageSource,
        source: String = "gateway"
    ) {
        self.requestID = requestID
        self.responseID = responseID
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.subscription = subscription
        self.product = product
        self.team = team
        self.costCenter = costCenter
        self.backend = backend
        self.deployment = deployment
        self.model = model
        self.route = route
        self.httpStatus = httpStatus
        self.streamed = streamed
        self.usage = usage
        self.usageSource = usageSource
        self.source = source
    }

    /// Wall time from the request reaching Tollgate to the last byte of the response.
    public var latencyMilliseconds: Int { max(0, Int((endedAt.timeIntervalSince(startedAt) * 1000).rounded())) }
}
