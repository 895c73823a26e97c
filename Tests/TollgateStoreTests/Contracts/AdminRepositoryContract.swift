import Foundation
import Logging
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// One contract for the catalog, key, price, period and commitment repositories, run on PostgreSQL and on the in-memory
/// implementations (below), so the fakes the DB-free suites use cannot drift from what the database does.
enum AdminRepositoryContract {
    static let logger = TestDatabase.logger

    static let document = PolicyDocument(
        backends: [
            BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini")]),
            BackendSpec(name: "openai", kind: .openai, baseURL: "https://api.openai.com", credentialEnv: "OPENAI_API_KEY"),
        ],
        products: [ProductSpec(name: "standard", limits: ProductLimits(tokensPerMinute: 1_000))],
        subscriptions: [
            SubscriptionSpec(id: "contract-a", displayName: "Team A", team: "a", costCenter: "cc-1", product: "standard"),
            SubscriptionSpec(id: "contract-b", team: "b"),
        ])

    static func catalogApplyThenPlanIsEmpty(_ repositories: Repositories) async throws {
        let catalog = repositories.catalog
        #expect(try await catalog.plan(document, logger: logger) == [
            "+ backend mock (mock, 1 deployment(s))", "+ backend openai (openai, 0 deployment(s))", "+ product standard",
            "+ subscription contract-a", "+ subscription contract-b",
        ])
        try await catalog.apply(document, logger: logger)
        try await catalog.apply(document, logger: logger)
        #expect(try await catalog.plan(document, logger: logger) == [])
        let snapshot = try await catalog.snapshot(logger: logger)
        #expect(snapshot.routes["gpt-4o-mini"] == [.init(backend: "mock", deployment: "gpt-4o-mini", model: "gpt-4o-mini")])
        #expect(snapshot.subscriptions["contract-a"]?.team == "a")
        #expect(snapshot.subscriptions["contract-a"]?.stateActor == "config")
        #expect(snapshot.products["standard"]?.limits.tokensPerMinute == 1_000)

        // A backend dropped from the file goes; a subscription dropped from it stays (usage history names it).
        var smaller = document
        smaller.backends.removeLast()
        smaller.subscriptions.removeLast()
        #expect(try await catalog.plan(smaller, logger: logger) == ["- backend openai"])
        try await catalog.apply(smaller, logger: logger)
        let after = try await catalog.snapshot(logger: logger)
        #expect(after.backends["openai"] == nil)
        #expect(after.subscriptions["contract-b"] != nil)
    }

    static func keysLiveOnePerSlotAndRevokeByIDOrPrefix(_ repositories: Repositories) async throws {
        try await repositories.catalog.apply(document, logger: logger)
        let keys = repositories.keys
        await #expect(throws: KeyStoreError.unknownSubscription("nobody")) {
            _ = try await keys.create(for: "nobody", slot: .primary, logger: logger)
        }
        let (key, primary) = try await keys.create(for: "contract-a", slot: .primary, logger: logger)
        #expect(key.hasPrefix(primary.prefix))
        #expect(try await repositories.catalog.snapshot(logger: logger).keys[KeyStore.hash(key)]?.id == primary.id)
        await #expect(throws: KeyStoreError.slotTaken("contract-a", .primary)) {
            _ = try await keys.create(for: "contract-a", slot: .primary, logger: logger)
        }
        let (_, secondary) = try await keys.create(for: "contract-a", slot: .secondary, logger: logger)
        #expect(try await keys.list(subscription: "contract-a", includeRevoked: false, logger: logger).map(\.slot) == ["primary", "secondary"])

        let revoked = try await keys.revoke(primary.prefix, logger: logger)
        #expect(revoked.id == primary.id)
        #expect(revoked.revokedAt != nil)
        #expect(try await repositories.catalog.snapshot(logger: logger).keys[KeyStore.hash(key)] == nil)
        await #expect(throws: KeyStoreError.unknownKey(primary.prefix)) { _ = try await keys.revoke(primary.prefix, logger: logger) }
        _ = try await keys.revoke(secondary.id.uuidString, logger: logger)
        #expect(try await keys.list(subscription: "contract-a", includeRevoked: false, logger: logger).isEmpty)
        #expect(try await keys.list(subscription: "contract-a", includeRevoked: true, logger: logger).count == 2)
        // The slot is free again once its key is revoked.
        _ = try await keys.create(for: "contract-a", slot: .primary, logger: logger)
    }

    static let october = BillingPeriod.month("2026-10")!
    static let november = BillingPeriod.month("2026-11")!

    static func pricesAreVersionedAndClosedMonthsFrozen(_ repositories: Repositories) async throws {
        let prices = repositories.prices
        let october = ModelPrice(
            model: "gpt-4o", currency: "USD", effectiveFrom: Self.october.start, inputPerMillion: Decimal(string: "2.5")!, outputPerMillion: 10)
        var november = october
        november.effectiveFrom = Self.november.start
        november.inputPerMillion = 2
        #expect(try await prices.importPrices([november, october], priceList: "a.csv", logger: logger) == .init(added: 2, unchanged: 0))
        #expect(try await prices.importPrices([october], priceList: "a.csv", logger: logger) == .init(added: 0, unchanged: 1))
        var changed = october
        changed.outputPerMillion = 11
        await #expect(throws: PriceImportError.conflictingVersion(model: "gpt-4o", backend: "", deployment: "", effectiveFrom: Self.october.start)) {
            _ = try await prices.importPrices([changed], priceList: "b.csv", logger: logger)
        }
        let listed = try await prices.list(logger: logger)
        #expect(listed.map(\.price.inputPerMillion) == [Decimal(string: "2.5")!, 2])
        #expect(listed.map(\.effectiveTo) == [Self.november.start, nil])
        #expect(listed.map(\.priceList) == ["a.csv", "a.csv"])

        // Close October: a price starting inside it is refused, and nothing of a refused import lands.
        try await repositories.periods.close(Self.october, closedBy: "test", now: Self.november.start, logger: logger)
        #expect(try await repositories.periods.closedThrough(logger: logger) == Self.october.end)
        var late = october
        late.model = "gpt-4.1"
        var fine = late
        fine.effectiveFrom = Self.november.start
        await #expect(throws: PriceImportError.startsInClosedPeriod(model: "gpt-4.1", effectiveFrom: late.effectiveFrom, closedThrough: Self.october.end)) {
            _ = try await prices.importPrices([fine, late], priceList: "c.csv", logger: logger)
        }
        #expect(try await prices.list(logger: logger).count == 2)
    }

    static func periodsCloseInOrderAndFreezeCommitments(_ repositories: Repositories) async throws {
        let (periods, commitments) = (repositories.periods, repositories.commitments)
        let september = BillingPeriod.month("2026-09")!
        try await commitments.set(PTUCommitment(backend: "ptu", effectiveFrom: september.start, monthlyAmount: 100, currency: "USD"), logger: logger)
        try await commitments.set(PTUCommitment(backend: "ptu", effectiveFrom: november.start, monthlyAmount: 0, currency: "USD"), logger: logger)
        #expect(try await commitments.commitments(in: october, logger: logger).map(\.monthlyAmount) == [100])
        #expect(try await commitments.commitments(in: november, logger: logger).isEmpty)

        await #expect(throws: PeriodCloseError.notEnded(period: "2026-11", endsAt: november.end)) {
            try await periods.close(november, closedBy: "test", now: november.start, logger: logger)
        }
        try await periods.close(september, closedBy: "test", now: november.end, logger: logger)
        await #expect(throws: PeriodCloseError.outOfOrder(period: "2026-11", nextToClose: "2026-10")) {
            try await periods.close(november, closedBy: "test", now: november.end, logger: logger)
        }
        await #expect(throws: PeriodCloseError.alreadyClosed(period: "2026-09", closedThrough: september.end)) {
            try await periods.close(september, closedBy: "test", now: november.end, logger: logger)
        }
        // September's money is frozen; October's is not, until October closes.
        await #expect(throws: DomainRuleError.commitmentFrozen) {
            try await commitments.set(PTUCommitment(backend: "ptu", effectiveFrom: september.start, monthlyAmount: 5, currency: "USD"), logger: logger)
        }
        try await commitments.set(PTUCommitment(backend: "ptu", effectiveFrom: october.start, monthlyAmount: 50, currency: "USD"), logger: logger)
        #expect(try await commitments.commitments(in: october, logger: logger).map(\.monthlyAmount) == [50])
        try await periods.close(october, closedBy: "test", now: november.end, logger: logger)
        await #expect(throws: DomainRuleError.commitmentFrozen) {
            try await commitments.set(PTUCommitment(backend: "ptu", effectiveFrom: october.start, monthlyAmount: 60, currency: "USD"), logger: logger)
        }
    }
}

// Each test runs in a database of its own: the contract starts from an empty catalog.
@Suite(.freshDatabasePerTest) struct PostgresAdminRepositoryContractTests {
    func run(_ body: @Sendable (Repositories) async throws -> Void) async throws {
        try await TestDatabase.withClient { client in try await body(.postgres(client: client)) }
    }

    @Test func catalogApplyThenPlanIsEmpty() async throws { try await run(AdminRepositoryContract.catalogApplyThenPlanIsEmpty) }
    @Test func keys() async throws { try await run(AdminRepositoryContract.keysLiveOnePerSlotAndRevokeByIDOrPrefix) }
    @Test func prices() async throws { try await run(AdminRepositoryContract.pricesAreVersionedAndClosedMonthsFrozen) }
    @Test func periodsAndCommitments() async throws { try await run(AdminRepositoryContract.periodsCloseInOrderAndFreezeCommitments) }
}

struct InMemoryAdminRepositoryContractTests {
    func run(_ body: @Sendable (Repositories) async throws -> Void) async throws { try await body(InMemoryStore().repositories) }

    @Test func catalogApplyThenPlanIsEmpty() async throws { try await run(AdminRepositoryContract.catalogApplyThenPlanIsEmpty) }
    @Test func keys() async throws { try await run(AdminRepositoryContract.keysLiveOnePerSlotAndRevokeByIDOrPrefix) }
    @Test func prices() async throws { try await run(AdminRepositoryContract.pricesAreVersionedAndClosedMonthsFrozen) }
    @Test func periodsAndCommitments() async throws { try await run(AdminRepositoryContract.periodsCloseInOrderAndFreezeCommitments) }
}
