import Foundation
import Logging
import TollgateCore
import TollgateStore

/// `BudgetRepository` over `InMemoryRulesStore`'s tables.
public struct InMemoryBudgetRepository: BudgetRepository {
    let store: InMemoryRulesStore

    public func applyConfigured(_ budgets: [BudgetDefinition], logger: Logger) async throws {
        store.read { tables in
            let names = Set(budgets.map(\.name))
            for (name, stored) in tables.budgets where stored.source == "config" && !names.contains(name) {
                InMemoryRulesStore.deleteBudget(name, tables: &tables)
            }
            for budget in budgets { tables.budgets[budget.name] = .init(definition: budget, source: "config") }
        }
    }

    public func upsert(_ budget: BudgetDefinition, source: String, logger: Logger) async throws {
        store.read { $0.budgets[budget.name] = .init(definition: budget, source: source) }
    }

    public func remove(_ name: String, logger: Logger) async throws {
        store.read { InMemoryRulesStore.deleteBudget(name, tables: &$0) }
    }

    public func all(logger: Logger) async throws -> [BudgetDefinition] {
        store.read { $0.budgets.values.map(\.definition).sorted { $0.name < $1.name } }
    }

    public func state(of budget: BudgetDefinition, in period: BillingPeriod, logger: Logger) async throws -> BudgetPeriodState {
        store.read { tables in
            let fired = tables.firings.keys.filter { $0.budget == budget.name && $0.periodStart == period.start }
            return BudgetPeriodState(
                measured: InMemoryRulesStore.measure(budget, in: period, tables: tables),
                increase: InMemoryRulesStore.increase(of: budget.name, periodStart: period.start, tables: tables),
                firedThresholds: Set(fired.filter { $0.signal == .threshold }.map(\.percent)),
                forecastFired: fired.contains { $0.signal == .forecast })
        }
    }

    /// As `reporting.budget_status`, at the store's clock.
    public func status(logger: Logger) async throws -> [BudgetStatus] {
        let instant = store.now()
        return store.read { tables in
            tables.budgets.values.map(\.definition).sorted { $0.name < $1.name }.map { budget in
                let period = budget.period(at: instant)
                let use = InMemoryRulesStore.measure(budget, in: period, tables: tables)
                let limit = budget.limit + InMemoryRulesStore.increase(of: budget.name, periodStart: period.start, tables: tables)
                let held = tables.holds.values.contains {
                    $0.hold.budget == budget.name && $0.hold.period.start == period.start
                        && ($0.hold.status == .pending || $0.hold.status == .suspended)
                }
                let fired = tables.firings.keys.contains { $0.budget == budget.name && $0.periodStart == period.start }
                let state = held ? "suspended" : use >= limit ? "exceeded" : fired ? "warning" : "ok"
                return BudgetStatus(
                    budget: budget.name, scopeKind: budget.scope.kind, scopeValue: budget.scope.target, metric: budget.metric.rawValue,
                    currency: budget.currency, period: budget.period.rawValue, periodStart: period.start, periodEnd: period.end,
                    currentUse: use.description, effectiveLimit: limit.description,
                    percentUsed: BudgetMath.percent(measured: use, limit: limit).description,
                    forecast: BudgetMath.forecast(measured: use, period: period, now: instant).map { $0.rounded(scale: 2).description }, state: state)
            }
        }
    }

    public func knownTargets(logger: Logger) async throws -> BudgetTargets {
        store.read { BudgetTargets(subscriptions: Set($0.subscriptions.keys), products: $0.products) }
    }

    public func audit(subscription: SubscriptionID?, budget: String?, limit: Int, logger: Logger) async throws -> [BudgetAuditEntry] {
        store.read { tables in
            Array(
                tables.audit.filter { entry in
                    (subscription == nil || entry.subscription == subscription?.rawValue) && (budget == nil || entry.budget == budget)
                }.prefix(limit))
        }
    }

    public func transaction<T: Sendable>(logger: Logger, _ body: (any RulesTransaction) async throws -> T) async throws -> T {
        try await store.transaction(body)
    }
}
