import Foundation
import Logging
import TollgateCore

/// Budgets, their thresholds, their per-period state (use, increases, firings) and the audit trail.
///
/// The rules engine decides (Core's `BudgetEvaluation`); this repository reads what it decides on and, through
/// `transaction`, writes what it decided as one unit.
public protocol BudgetRepository: Sendable {
    /// Replaces the budgets that came from `tollgate.yaml` with `budgets` in one transaction: those missing from the
    /// file are removed (with their firing state; the audit trail stays), the rest upserted. Budgets created through the
    /// admin API (`source` = `admin:…`) are left alone.
    func applyConfigured(_ budgets: [BudgetDefinition], logger: Logger) async throws
    /// Creates or replaces one budget.
    /// - Parameter source: `config`, or `admin:<name>` for budgets managed through the admin API.
    func upsert(_ budget: BudgetDefinition, source: String, logger: Logger) async throws
    func remove(_ name: String, logger: Logger) async throws
    /// Every budget, by name. Rows that cannot be read are logged and skipped.
    func all(logger: Logger) async throws -> [BudgetDefinition]
    /// Use, increases and firings of `budget` in `period`.
    func state(of budget: BudgetDefinition, in period: BillingPeriod, logger: Logger) async throws -> BudgetPeriodState
    /// Every budget's current status, by name (`reporting.budget_status`, at the store's clock).
    func status(logger: Logger) async throws -> [BudgetStatus]
    /// The subscriptions and products a budget may name (the admin API validates against them).
    func knownTargets(logger: Logger) async throws -> BudgetTargets
    /// The audit trail, oldest first, optionally of one subscription or one budget.
    func audit(subscription: SubscriptionID?, budget: String?, limit: Int, logger: Logger) async throws -> [BudgetAuditEntry]
    /// Runs `body` in one transaction: it commits when `body` returns and rolls back when it throws.
    func transaction<T: Sendable>(logger: Logger, _ body: (any RulesTransaction) async throws -> T) async throws -> T
}

/// The names a budget's scope may refer to.
public struct BudgetTargets: Sendable, Hashable {
    public var subscriptions: Set<SubscriptionID>
    public var products: Set<String>
    public init(subscriptions: Set<SubscriptionID>, products: Set<String>) {
        self.subscriptions = subscriptions
        self.products = products
    }
}

extension BudgetRepository {
    /// Creates or replaces a budget from the admin API after the same checks `tollgate.yaml` gets.
    /// - Parameter actor: `admin:<name>`; such budgets survive `tollgate apply`.
    /// - Throws: `BudgetRejected` with the problems, when there are any.
    public func put(_ spec: BudgetSpec, actor: String, logger: Logger) async throws {
        let targets = try await knownTargets(logger: logger)
        let problems = validate(budgets: [spec], knownSubscriptions: targets.subscriptions, knownProducts: targets.products)
        guard problems.isEmpty, let definition = spec.definition else { throw BudgetRejected(problems: problems) }
        try await upsert(definition, source: actor, logger: logger)
    }
}

/// A budget the admin API refused, with the problems located in it (`budgets[0].limit: must be positive`).
public struct BudgetRejected: Error, Hashable, Sendable, CustomStringConvertible {
    public var problems: [PolicyProblem]
    public init(problems: [PolicyProblem]) { self.problems = problems }
    public var description: String {
        problems.map { "\($0.pathText.replacingOccurrences(of: "budgets[0].", with: "")): \($0.message)" }.joined(separator: "; ")
    }
}
