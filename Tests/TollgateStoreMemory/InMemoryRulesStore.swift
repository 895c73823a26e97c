import Foundation
import Synchronization
import TollgateCore
import TollgateStore

/// The tables behind the in-memory rules repositories (`InMemoryBudgetRepository`, `InMemorySubscriptionStateRepository`,
/// `InMemoryWebhookRepository`), shared so one `RulesTransaction` spans budgets, holds and the outbox as in PostgreSQL.
///
/// Every operation runs under one lock, so each is atomic. A transaction works on a copy and records its operations;
/// on commit they are replayed on the live tables under the lock, so a rolled-back transaction leaves nothing behind and
/// writes made meanwhile by others are kept (the fake does not model isolation levels beyond that).
public final class InMemoryRulesStore: Sendable {
    struct Subscription: Sendable {
        var id: SubscriptionID
        var team: String?
        var product: String?
        var costCenter: String?
        var state: String
        var actor: String
        var reason: String?
    }
    struct Usage: Sendable {
        var subscription: SubscriptionID
        var team: String?
        var product: String?
        var costCenter: String?
        var hourStart: Date
        var tokens: Int
        var cost: Decimal
        var currency: String?
    }
    struct StoredBudget: Sendable {
        var definition: BudgetDefinition
        var source: String
    }
    struct Adjustment: Sendable {
        var budget: String
        var periodStart: Date
        var amount: Decimal
    }
    struct FiringKey: Hashable, Sendable {
        var budget: String
        var periodStart: Date
        var signal: BudgetSignal
        var percent: Int
    }
    struct Hold: Sendable {
        var hold: BudgetHold
        var requested: Int
    }
    struct Endpoint: Sendable {
        var endpoint: WebhookEndpoint
        var created: Int
    }
    struct StoredSecret: Sendable {
        var endpoint: UUID
        var secret: String
        var expiresAt: Date?
        var id: Int
    }
    struct OutboxKey: Hashable, Sendable {
        var message: String
        var endpoint: UUID
    }
    struct OutboxRow: Sendable {
        /// `pending`, `delivered`, `failed`, `cancelled`.
        var status = "pending"
        var attempts = 0
        var nextAttemptAt: Date
        var firstAttemptAt: Date?
        var lastStatus: Int?
        var lastError: String?
        var enqueued: Int
    }

    struct Tables: Sendable {
        var subscriptions: [SubscriptionID: Subscription] = [:]
        var products: Set<String> = []
        var usage: [Usage] = []
        var budgets: [String: StoredBudget] = [:]
        var adjustments: [Adjustment] = []
        var firings: [FiringKey: BudgetFiring] = [:]
        var audit: [BudgetAuditEntry] = []
        var holds: [BudgetHold.Key: Hold] = [:]
        var endpoints: [UUID: Endpoint] = [:]
        var secrets: [StoredSecret] = []
        var messages: [String: WebhookMessage] = [:]
        var outbox: [OutboxKey: OutboxRow] = [:]
        var deliveries: [WebhookDelivery] = []
        var sequence = 0

        mutating func next() -> Int {
            sequence += 1
            return sequence
        }
    }

    let tables = Mutex(Tables())
    /// The store's clock, standing in for PostgreSQL's `now()` (leases, secret expiry, status).
    let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = { Date() }) { self.now = now }

    /// The three repositories over these tables.
    public var rules: RulesRepositories {
        RulesRepositories(budgets: budgets, subscriptions: subscriptionStates, webhooks: webhooks)
    }
    public var budgets: InMemoryBudgetRepository { InMemoryBudgetRepository(store: self) }
    public var subscriptionStates: InMemorySubscriptionStateRepository { InMemorySubscriptionStateRepository(store: self) }
    public var webhooks: InMemoryWebhookRepository { InMemoryWebhookRepository(store: self) }

    func read<R>(_ body: (inout Tables) throws -> R) rethrows -> R { try tables.withLock { try body(&$0) } }

    // MARK: - Test arrangement (what other parts of Tollgate write in PostgreSQL)

    /// Adds a subscription to the catalog (and its product).
    public func addSubscription(
        _ id: SubscriptionID, team: String? = nil, product: String? = nil, costCenter: String? = "cc-1", state: SubscriptionState = .active,
        actor: String = "config"
    ) {
        tables.withLock { tables in
            tables.subscriptions[id] = Subscription(
                id: id, team: team, product: product, costCenter: costCenter, state: state.rawValue, actor: actor, reason: nil)
            if let product { tables.products.insert(product) }
        }
    }

    /// Records metered use as the hourly rollup would hold it, attributed to the subscription's current team, product and
    /// cost center.
    /// - Parameter cost: in `currency`; budgets on cost count only their own currency.
    public func recordUsage(_ subscription: SubscriptionID, tokens: Int, cost: Decimal = 0, currency: String? = nil, at instant: Date) {
        tables.withLock { tables in
            let owner = tables.subscriptions[subscription]
            let hour = Date(timeIntervalSince1970: (instant.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            tables.usage.append(
                Usage(
                    subscription: subscription, team: owner?.team, product: owner?.product, costCenter: owner?.costCenter, hourStart: hour,
                    tokens: tokens, cost: cost, currency: currency))
        }
    }

    /// The subscription's state, actor and reason, for assertions.
    public func subscriptionState(_ id: SubscriptionID) -> (state: String, actor: String, reason: String?)? {
        tables.withLock { $0.subscriptions[id].map { ($0.state, $0.actor, $0.reason) } }
    }

    /// Event types of every stored webhook message, sorted.
    public func messageTypes() -> [String] {
        tables.withLock { $0.messages.values.map(\.type.rawValue).sorted() }
    }

    /// Every stored webhook message.
    public func messages() -> [WebhookMessage] {
        tables.withLock { Array($0.messages.values) }
    }

    /// Every hold, for assertions.
    public func holds() -> [BudgetHold] {
        tables.withLock { $0.holds.values.sorted { $0.requested < $1.requested }.map(\.hold) }
    }

    // MARK: - Shared rules (the SQL's meaning, once)

    static func covers(_ scope: BudgetScope, subscription: SubscriptionID, team: String?, product: String?, costCenter: String?) -> Bool {
        switch scope {
        case .all: true
        case .subscription(let id): id == subscription
        case .product(let name): product == name
        case .team(let name): team == name
        case .costCenter(let name): costCenter == name
        }
    }

    /// `tollgate_budget_measure`: tokens, or cost in the budget's currency, over the hours in `period`.
    static func measure(_ budget: BudgetDefinition, in period: BillingPeriod, tables: Tables) -> Decimal {
        var total: Decimal = 0
        for row in tables.usage where row.hourStart >= period.start && row.hourStart < period.end {
            guard covers(budget.scope, subscription: row.subscription, team: row.team, product: row.product, costCenter: row.costCenter) else {
                continue
            }
            switch budget.metric {
            case .tokens: total += Decimal(row.tokens)
            case .cost: if row.currency == budget.currency { total += row.cost }
            }
        }
        return total
    }

    static func increase(of budget: String, periodStart: Date, tables: Tables) -> Decimal {
        tables.adjustments.filter { $0.budget == budget && $0.periodStart == periodStart }.reduce(0) { $0 + $1.amount }
    }

    /// Deletes a budget with what cascades from it in PostgreSQL (thresholds, firings, adjustments, holds); the audit stays.
    static func deleteBudget(_ name: String, tables: inout Tables) {
        tables.budgets[name] = nil
        tables.firings = tables.firings.filter { $0.key.budget != name }
        tables.adjustments.removeAll { $0.budget == name }
        tables.holds = tables.holds.filter { $0.key.budget != name }
    }

    static func enqueue(_ message: WebhookMessage, at instant: Date, tables: inout Tables) -> Int {
        tables.messages[message.id] = message
        var queued = 0
        for endpoint in tables.endpoints.values.sorted(by: { $0.created < $1.created }).map(\.endpoint) where endpoint.disabledAt == nil {
            guard endpoint.eventTypes.isEmpty || endpoint.eventTypes.contains(message.type.rawValue) else { continue }
            tables.outbox[OutboxKey(message: message.id, endpoint: endpoint.id)] = OutboxRow(nextAttemptAt: instant, enqueued: tables.next())
            queued += 1
        }
        return queued
    }

    static func disable(_ endpoint: UUID, reason: String, at instant: Date, tables: inout Tables) {
        if var row = tables.endpoints[endpoint], row.endpoint.disabledAt == nil {
            row.endpoint.disabledAt = instant
            row.endpoint.disabledReason = reason
            tables.endpoints[endpoint] = row
        }
        for (key, var row) in tables.outbox where key.endpoint == endpoint && row.status == "pending" {
            row.status = "cancelled"
            row.lastError = reason
            tables.outbox[key] = row
        }
    }

    // MARK: - Transactions

    /// Runs `body` on a copy of the tables; on success replays its operations on the live tables.
    func transaction<T: Sendable>(_ body: (any RulesTransaction) async throws -> T) async throws -> T {
        let transaction = InMemoryRulesTransaction(store: self, working: tables.withLock { $0 })
        let value = try await body(transaction)
        let journal = transaction.journal.withLock { $0 }
        tables.withLock { tables in
            for operation in journal { operation(&tables) }
        }
        return value
    }
}

/// A transaction's handle: operations run on its private copy at once (so it reads its own writes) and are kept to be
/// replayed on commit.
final class InMemoryRulesTransaction: RulesTransaction {
    let store: InMemoryRulesStore
    let working: Mutex<InMemoryRulesStore.Tables>
    let journal = Mutex<[@Sendable (inout InMemoryRulesStore.Tables) -> Void]>([])

    init(store: InMemoryRulesStore, working: InMemoryRulesStore.Tables) {
        self.store = store
        self.working = Mutex(working)
    }

    /// Runs `operation` on the working copy and records it for commit.
    private func apply<R>(_ operation: @escaping @Sendable (inout InMemoryRulesStore.Tables) -> R) -> R {
        journal.withLock { journal in journal.append { tables in _ = operation(&tables) } }
        return working.withLock { operation(&$0) }
    }

    private func look<R>(_ read: (InMemoryRulesStore.Tables) -> R) -> R { working.withLock { read($0) } }

    func recordFiring(_ firing: BudgetFiring) async throws -> Bool {
        let key = InMemoryRulesStore.FiringKey(
            budget: firing.budget, periodStart: firing.period.start, signal: firing.signal, percent: firing.percent)
        return apply { tables in
            guard tables.firings[key] == nil else { return false }
            tables.firings[key] = firing
            return true
        }
    }

    func appendAudit(_ e: BudgetAuditRecord) async throws {
        let at = store.now()
        apply { tables in
            tables.audit.append(
                BudgetAuditEntry(
                    id: tables.next(), occurredAt: at, budget: e.budget, subscription: e.subscription?.rawValue, event: e.event, measured: e.measured,
                    limit: e.limit, thresholdPercent: e.thresholdPercent, action: e.action, adapter: e.adapter, adapterResult: e.adapterResult,
                    actor: e.actor, reason: e.reason))
        }
    }

    @discardableResult
    func enqueue(_ message: WebhookMessage) async throws -> Int {
        let at = store.now()
        return apply { InMemoryRulesStore.enqueue(message, at: at, tables: &$0) }
    }

    func subscriptions(in scope: BudgetScope) async throws -> [SubscriptionStateRow] {
        look { tables in
            tables.subscriptions.values
                .filter { InMemoryRulesStore.covers(scope, subscription: $0.id, team: $0.team, product: $0.product, costCenter: $0.costCenter) }
                .sorted { $0.id.rawValue < $1.id.rawValue }
                .map { SubscriptionStateRow(id: $0.id, state: $0.state, actor: $0.actor, reason: $0.reason) }
        }
    }

    func hold(_ subscription: SubscriptionID, for budget: String, period: BillingPeriod) async throws {
        apply { tables in
            let key = BudgetHold.Key(budget: budget, subscription: subscription, periodStart: period.start)
            if let existing = tables.holds[key], existing.hold.status == .pending || existing.hold.status == .suspended { return }
            tables.holds[key] = InMemoryRulesStore.Hold(
                hold: BudgetHold(budget: budget, subscription: subscription, period: period, status: .pending), requested: tables.next())
        }
    }

    func noteHoldFailure(_ hold: BudgetHold.Key, result: String) async throws {
        apply { tables in tables.holds[hold]?.hold.adapterResult = result }
    }

    func markHoldApplied(_ hold: BudgetHold.Key, status: BudgetHold.Status, result: String) async throws {
        apply { tables in
            guard tables.holds[hold]?.hold.status == .pending else { return }
            tables.holds[hold]?.hold.status = status
            tables.holds[hold]?.hold.adapterResult = result
        }
    }

    func endHold(_ hold: BudgetHold.Key, status: BudgetHold.Status, by actor: String, result: String) async throws {
        apply { tables in
            guard tables.holds[hold] != nil else { return }
            tables.holds[hold]?.hold.status = status
            tables.holds[hold]?.hold.adapterResult = result
        }
    }

    func endHolds(of subscription: SubscriptionID, status: BudgetHold.Status, by actor: String, result: String) async throws {
        apply { tables in
            for (key, row) in tables.holds where key.subscription == subscription && (row.hold.status == .pending || row.hold.status == .suspended) {
                tables.holds[key]?.hold.status = status
                tables.holds[key]?.hold.adapterResult = result
            }
        }
    }

    func addAdjustment(budget: String, periodStart: Date, amount: Decimal, actor: String, reason: String) async throws {
        apply { tables in tables.adjustments.append(.init(budget: budget, periodStart: periodStart, amount: amount)) }
    }

    func rearmThresholds(budget: String, period: BillingPeriod) async throws {
        apply { tables in
            guard let stored = tables.budgets[budget] else { return }
            let effective = stored.definition.limit + InMemoryRulesStore.increase(of: budget, periodStart: period.start, tables: tables)
            let used = InMemoryRulesStore.measure(stored.definition, in: period, tables: tables)
            tables.firings = tables.firings.filter { key, _ in
                !(key.budget == budget && key.periodStart == period.start && key.signal == .threshold
                    && used < effective * Decimal(key.percent) / 100)
            }
        }
    }
}
