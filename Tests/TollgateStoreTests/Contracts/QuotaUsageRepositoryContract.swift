import Foundation
import Logging
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// One `QuotaUsageRepository` and how usage lands in it.
protocol QuotaUsageFixture {
    var repository: any QuotaUsageRepository { get }
    /// Lands `tokens` used by `subscription` at `instant`, however the implementation learns of usage.
    func land(_ tokens: Int, by subscription: SubscriptionID, at instant: Date) async throws
}

/// The checks every `QuotaUsageRepository` passes: the in-memory one and PostgreSQL's.
enum QuotaUsageRepositoryContract {
    /// March 2026, UTC.
    static let march = BillingPeriod.containing(Date(timeIntervalSince1970: 1_773_489_600), kind: .monthly)
    static let subscriptions: [SubscriptionID] = ["sub-a", "sub-b", "sub-c", "sub-z"]

    static func sumsEachSubscriptionsTokensInsideThePeriodOnly(_ fixture: some QuotaUsageFixture) async throws {
        try await fixture.land(10, by: "sub-a", at: Date(timeIntervalSince1970: 1_772_323_200))  // 2026-03-01 00:00:00: the first instant
        try await fixture.land(5, by: "sub-a", at: Date(timeIntervalSince1970: 1_775_001_599))  // 2026-03-31 23:59:59
        try await fixture.land(100, by: "sub-a", at: Date(timeIntervalSince1970: 1_775_001_600))  // 2026-04-01 00:00:00: next period
        try await fixture.land(7, by: "sub-a", at: Date(timeIntervalSince1970: 1_772_323_199))  // 2026-02-28 23:59:59: last period
        try await fixture.land(3, by: "sub-b", at: Date(timeIntervalSince1970: 1_773_489_600))  // 2026-03-14 12:00
        try await fixture.land(50, by: "sub-z", at: Date(timeIntervalSince1970: 1_773_489_600))  // not asked about
        let used = try await fixture.repository.tokensUsed(by: ["sub-a", "sub-b", "sub-c"], in: march, logger: Logger(label: "contract"))
        #expect(used == ["sub-a": 15, "sub-b": 3])  // sub-c used nothing: absent
    }

    static func noSubscriptionsNoUsage(_ fixture: some QuotaUsageFixture) async throws {
        try await fixture.land(10, by: "sub-a", at: Date(timeIntervalSince1970: 1_773_489_600))
        #expect(try await fixture.repository.tokensUsed(by: [], in: march, logger: Logger(label: "contract")).isEmpty)
    }
}

@Suite struct InMemoryQuotaUsageRepositoryContractTests {
    struct Fixture: QuotaUsageFixture {
        let memory = InMemoryQuotaUsageRepository()
        var repository: any QuotaUsageRepository { memory }
        func land(_ tokens: Int, by subscription: SubscriptionID, at instant: Date) async throws { memory.record(tokens, by: subscription, at: instant) }
    }

    @Test func sumsEachSubscriptionsTokensInsideThePeriodOnly() async throws {
        try await QuotaUsageRepositoryContract.sumsEachSubscriptionsTokensInsideThePeriodOnly(Fixture())
    }
    @Test func noSubscriptionsNoUsage() async throws { try await QuotaUsageRepositoryContract.noSubscriptionsNoUsage(Fixture()) }
}

@Suite(.freshDatabasePerTest) struct PostgresQuotaUsageRepositoryContractTests {
    /// Usage lands as the gateway lands it: a usage row through `UsageStore`, rolled up into `usage_hourly`.
    struct Fixture: QuotaUsageFixture {
        let database: PostgresDatabase
        var repository: any QuotaUsageRepository { database.quotaUsage }
        func land(_ tokens: Int, by subscription: SubscriptionID, at instant: Date) async throws {
            let event = UsageEvent(
                requestID: UUIDv7.make(at: instant), startedAt: instant, endedAt: instant, subscription: subscription, backend: "openai", model: "gpt-4o",
                route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: tokens, completionTokens: 0), usageSource: .reported)
            try await UsageStore(client: database.client).insert([event], logger: TestDatabase.logger)
        }
    }

    static func withFixture(_ body: @Sendable (Fixture) async throws -> Void) async throws {
        try await PostgresDatabase.withDatabase(try await TestDatabase.location(), logger: TestDatabase.logger) { database in
            let document = PolicyDocument(subscriptions: QuotaUsageRepositoryContract.subscriptions.map { SubscriptionSpec(id: $0) })
            try await database.catalog.apply(document, logger: TestDatabase.logger)
            try await body(Fixture(database: database))
        }
    }

    @Test func sumsEachSubscriptionsTokensInsideThePeriodOnly() async throws {
        try await Self.withFixture { try await QuotaUsageRepositoryContract.sumsEachSubscriptionsTokensInsideThePeriodOnly($0) }
    }
    @Test func noSubscriptionsNoUsage() async throws { try await Self.withFixture { try await QuotaUsageRepositoryContract.noSubscriptionsNoUsage($0) } }
}
