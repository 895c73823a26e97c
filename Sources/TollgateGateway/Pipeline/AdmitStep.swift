import Foundation
import HTTPTypes
import NIOCore
import TollgateCore
import TollgateStore
import TollgateTokenizer

/// Admits the caller against every limit of its product (`TokenLimiter`'s limits, in order) by reserving what the
/// request may use: its prompt, counted with the model's tokenizer, plus its completion cap (`max_tokens`,
/// `max_completion_tokens` or `max_output_tokens`, else the product's `default_max_tokens`). `SettleStep` replaces the
/// reservation by the metered usage once the reply is known.
///
/// Reads `request.subscription`, `request.limits`, `request.call`, `request.catalog` and `request.body`; writes
/// `request.reservation` and `request.replyHeaders`. When a shared limit needs a lease first it asks to
/// `.retry(after:)` that work (rare: once per slice, not per request). Refuses with the first limit's error (429
/// `requests_per_minute_exceeded` / `tokens_per_minute_exceeded` with `Retry-After` and `retry-after-ms`, 403
/// `token_quota_exceeded`) before anything is forwarded. A product without limits costs nothing here: the body is
/// read only when a token limit (or the tokens-consumed header) needs the count.
struct AdmitStep: GatewayStep {
    let limiter: TokenLimiter

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        guard let limits = request.limits, limits.limitsAnything || limits.remainingTokensHeaderName != nil || limits.tokensConsumedHeaderName != nil
        else { return .next }
        let subscription = try request.required(request.subscription)
        let estimate: (prompt: Int, cap: Int)
        if let known = request.admissionEstimate {
            estimate = known
        } else {
            let countsTokens = limits.tokensPerMinute != nil || limits.tokenQuota != nil || limits.tokensConsumedHeaderName != nil
            estimate = countsTokens ? Self.estimate(request, defaultCap: limits.defaultMaxTokens) : (prompt: 0, cap: 0)
            request.admissionEstimate = estimate
        }
        // A shared limit whose slice is too small leases more first (off the event loop), at most twice a request.
        if request.admissionWaits < 2,
            let work = limiter.workBeforeReserving(
                subscription.id, limits: limits, requestID: request.requestID, promptTokens: estimate.prompt, completionCap: estimate.cap)
        {
            request.admissionWaits += 1
            return .retry(after: work)
        }
        let (reservation, standings) = try limiter.reserve(
            subscription.id, limits: limits, requestID: request.requestID, promptTokens: estimate.prompt, completionCap: estimate.cap)
        request.reservation = reservation
        request.replyHeaders = RateLimitHeaders.fields(standings, reservation: reservation)
        return .next
    }

    /// The prompt tokens (by the tokenizer of the deployment's model) and the completion cap of the request.
    static func estimate(_ request: ProxyRequest, defaultCap: Int?) -> (prompt: Int, cap: Int) {
        let bytes = Array(request.body.readableBytesView)
        let name = request.call.flatMap { ModelAccessStep.requestedDeployment(call: $0, body: request.body) } ?? ""
        let model = request.catalog?.routes[name]?.first?.model ?? name
        let prompt = UsageExtraction.estimatedPromptTokens(requestBody: bytes, model: model)
        guard request.call?.operation != .embeddings else { return (prompt, 0) }
        let json = JSONObjectReader(document: bytes)
        let own = json.flatMap { $0.int("max_completion_tokens") ?? $0.int("max_tokens") ?? $0.int("max_output_tokens") }
        return (prompt, max(0, own ?? defaultCap ?? 0))
    }
}

/// The rate-limit headers of an admitted request, as OpenAI sends them (`x-ratelimit-{limit,remaining,reset}-tokens`
/// for tokens per minute, `-requests` for requests per minute; resets in Go's duration form, `6m0s`), plus the APIM
/// header names a product configures: the remaining tokens (of the tokens-per-minute limit, else the quota) and the
/// prompt tokens counted for the request.
enum RateLimitHeaders {
    static func fields(_ standings: [LimitStanding], reservation: Reservation) -> HTTPFields {
        var fields = HTTPFields()
        for standing in standings {
            let unit: String
            switch standing.kind {
            case .tokensPerMinute: unit = "tokens"
            case .requestsPerMinute: unit = "requests"
            case .tokenQuota: continue
            }
            fields.append(HTTPField(name: HTTPField.Name("x-ratelimit-limit-\(unit)")!, value: "\(standing.limit)"))
            fields.append(HTTPField(name: HTTPField.Name("x-ratelimit-remaining-\(unit)")!, value: "\(standing.remaining)"))
            fields.append(HTTPField(name: HTTPField.Name("x-ratelimit-reset-\(unit)")!, value: goDuration(standing.resetsIn)))
        }
        let limits = reservation.limits
        if let name = limits.remainingTokensHeaderName.flatMap({ HTTPField.Name($0) }),
            let standing = standings.first(where: { $0.kind == .tokensPerMinute }) ?? standings.first(where: { $0.kind == .tokenQuota })
        {
            fields[name] = "\(standing.remaining)"
        }
        if let name = limits.tokensConsumedHeaderName.flatMap({ HTTPField.Name($0) }) { fields[name] = "\(reservation.promptTokens)" }
        return fields
    }

    /// `1h2m3s`, `6m0s`, `45s`: whole seconds, in the form OpenAI's reset headers use.
    static func goDuration(_ duration: Duration) -> String {
        let seconds = max(0, duration.components.seconds)
        let (hours, minutes, rest) = (seconds / 3600, seconds % 3600 / 60, seconds % 60)
        if hours > 0 { return "\(hours)h\(minutes)m\(rest)s" }
        if minutes > 0 { return "\(minutes)m\(rest)s" }
        return "\(rest)s"
    }
}
