import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// The usage side in memory: what the admin API reads (summaries, chargeback facts) is what the test put in, and
/// ingested batches are recorded as they arrive. Pricing and rollups are PostgreSQL's job and are tested there.
public final class InMemoryUsage: UsageSummaryRepository, ChargebackFactsSource, UsageIngestRepository {
    private struct State {
        var summaries: [UsageSummary] = []
        var hours: [Date] = []
        var facts: [BillingPeriod: [ChargebackFact]] = [:]
        var names: [SubscriptionID: String] = [:]
        var ingested: [(source: String, body: Data)] = []
    }
    private let state = Mutex(State())
    private let ingestResult: @Sendable (Data, String) throws -> IngestResult

    /// - Parameter ingestResult: what `ingest` answers for a body and source (default: every event accepted as new).
    public init(ingestResult: @escaping @Sendable (Data, String) throws -> IngestResult = { _, _ in
        IngestResult(received: 1, accepted: 1, inserted: 1, duplicates: 0, rejected: 0, rejections: [])
    }) {
        self.ingestResult = ingestResult
    }

    /// Records usage totals of the hour starting at `hour`.
    public func add(_ summary: UsageSummary, hour: Date) {
        state.withLock {
            $0.summaries.append(summary)
            $0.hours.append(hour)
        }
    }

    /// Sets the priced facts `facts(for: period)` returns.
    public func setFacts(_ facts: [ChargebackFact], for period: BillingPeriod, names: [SubscriptionID: String] = [:]) {
        state.withLock {
            $0.facts[period] = facts
            $0.names.merge(names) { $1 }
        }
    }

    /// Every body `ingest` was given, with its source.
    public var ingested: [(source: String, body: Data)] { state.withLock { $0.ingested } }

    public func summary(from: Date, to: Date, subscription: SubscriptionID?, logger: Logger) async throws -> [UsageSummary] {
        let hourStart = Date(timeIntervalSince1970: (from.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
        return state.withLock { state in
            var totals: [String: UsageSummary] = [:]
            for (summary, hour) in zip(state.summaries, state.hours)
            where hour >= hourStart && hour < to && (subscription == nil || summary.subscriptionID == subscription?.rawValue) {
                let key = "\(summary.subscriptionID)\u{0}\(summary.model)\u{0}\(summary.usageSource)"
                guard var total = totals[key] else {
                    totals[key] = summary
                    continue
                }
                total.requests += summary.requests
                total.promptTokens += summary.promptTokens
                total.completionTokens += summary.completionTokens
                total.totalTokens += summary.totalTokens
                total.cachedTokens += summary.cachedTokens
                total.reasoningTokens += summary.reasoningTokens
                totals[key] = total
            }
            return totals.values.sorted { ($0.subscriptionID, $0.model, $0.usageSource) < ($1.subscriptionID, $1.model, $1.usageSource) }
        }
    }

    public func facts(for period: BillingPeriod, logger: Logger) async throws -> [ChargebackFact] {
        state.withLock { $0.facts[period] ?? [] }
    }

    public func subscriptionNames(logger: Logger) async throws -> [SubscriptionID: String] {
        state.withLock { $0.names }
    }

    public func ingest(body: Data, contentType: String?, source: String, now: Date, logger: Logger) async throws -> IngestResult {
        let result = try ingestResult(body, source)
        state.withLock { $0.ingested.append((source, body)) }
        return result
    }
}
