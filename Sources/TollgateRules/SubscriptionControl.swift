import Foundation
import Logging
import PostgresNIO
import TollgateCore
import TollgateStore

/// What a manual state change did.
public struct SubscriptionChange: Sendable, Hashable, Codable {
    public var subscription: String
    public var state: String
    /// `changed`, `already_in_state` or `refused`.
    public var outcome: String
    /// Budgets whose limit was raised for the current period (`--increase`).
    public var increasedBudgets: [String]

    public init(subscription: String, state: String, outcome: String, increasedBudgets: [String]) {
        self.subscription = subscription
        self.state = state
        self.outcome = outcome
        self.increasedBudgets = increasedBudgets
    }

    enum CodingKeys: String, CodingKey {
        case subscription, state, outcome
        case increasedBudgets = "increased_budgets"
    }
}

public enum SubscriptionControlError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknownSubscription(SubscriptionID)
    case reasonRequired
    case increaseMustBePositive
    /// `--increase` was given but no budget currently holds the subscription suspended, so there is nothing to raise.
    case nothingToIncrease(SubscriptionID)

    public var description: String {
        switch self {
        case .unknownSubscription(let id): "no subscription '\(id)'"
        case .reasonRequired: "a reason is required; it is kept in the audit trail"
        case .increaseMustBePositive: "--increase must be a positive number"
        case .nothingToIncrease(let id): "subscription '\(id)' is not held by any budget this period, so there is no limit to increase"
        }
    }
}

/// Manual suspension and resumption: `tollgate subscriptions suspend|resume` and `PATCH /admin/v1/subscriptions/{id}`.
///
/// A manual suspension takes ownership of the subscription's state (`state_actor = admin:<name>`), so period rollover
/// leaves it alone. A manual resume releases the rules engine's hold for the rest of the period; with a one-off
/// increase, the limit of each budget that held it is raised for this period and thresholds above current use re-arm.
public struct SubscriptionControl: Sendable {
    public let client: PostgresClient
    public let suspender: any SubscriptionSuspender
    let catalog: CatalogStore

    public init(client: PostgresClient, suspender: any SubscriptionSuspender) {
        self.client = client
        self.suspender = suspender
        self.catalog = CatalogStore(client: client)
    }

    /// Suspends by hand.
    /// - Parameter actor: `admin:<name>`.
    @discardableResult
    public func suspend(subscription: SubscriptionID, reason: String, actor: String, now: Date = Date(), logger: Logger) async throws
        -> SubscriptionChange
    {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw SubscriptionControlError.reasonRequired }
        let before = try await currentState(subscription, logger: logger)
        // Unconditional in Tollgate's catalog: the administrator takes ownership even of a subscription the rules engine
        // suspended, so rollover will not re-enable it.
        guard try await catalog.setState(subscription, to: .suspended, reason: reason, actor: actor, logger: logger) else {
            throw SubscriptionControlError.unknownSubscription(subscription)
        }
        let why = SuspensionReason(budget: nil, message: reason, actor: actor)
        let adapterOutcome = try await suspender.suspend(subscription, reason: why, logger: logger)
        let changed = before != SubscriptionState.suspended.rawValue || adapterOutcome == .changed
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(
                """
                UPDATE budget_suspensions SET status = 'superseded', released_at = now(), released_by = \(actor),
                    adapter_result = 'suspended by hand'
                WHERE subscription_id = \(subscription.rawValue) AND status IN ('pending', 'suspended')
                """, logger: logger)
            try await BudgetAudit.append(
                .init(
                    subscription: subscription, event: "suspended", action: "suspend", adapter: suspender.name,
                    adapterResult: adapterOutcome.rawValue,
                    actor: actor, reason: reason),
                on: tx, logger: logger)
            if changed {
                let payload = SubscriptionStatePayload(
                    subscription: subscription.rawValue, budget: nil, state: SubscriptionState.suspended.rawValue, reason: reason, actor: actor,
                    adapter: suspender.name, resetsAt: nil)
                try await WebhookOutbox.enqueue(WebhookMessage(type: .suspended, occurredAt: now, data: payload), on: tx, logger: logger)
            }
        }
        logger.info("Subscription suspended by hand", metadata: ["subscription.id": "\(subscription)", "actor": "\(actor)"])
        return SubscriptionChange(
            subscription: subscription.rawValue, state: SubscriptionState.suspended.rawValue,
            outcome: changed ? SuspenderOutcome.changed.rawValue : SuspenderOutcome.alreadyInState.rawValue, increasedBudgets: [])
    }

    /// Resumes by hand, whoever suspended it.
    /// - Parameters:
    ///   - actor: `admin:<name>`.
    ///   - oneOffIncrease: raise, for the current period only, the limit of each budget holding the subscription
    ///     (tokens, or an amount in the budget's currency).
    @discardableResult
    public func resume(
        subscription: SubscriptionID, reason: String, actor: String, oneOffIncrease: Decimal? = nil, now: Date = Date(), logger: Logger
    ) async throws -> SubscriptionChange {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw SubscriptionControlError.reasonRequired }
        if let increase = oneOffIncrease, increase <= 0 { throw SubscriptionControlError.increaseMustBePositive }
        _ = try await currentState(subscription, logger: logger)
        var holding: [(budget: String, periodStart: Date, periodEnd: Date)] = []
        for try await row in try await client.query(
            """
            SELECT budget, period_start, period_end FROM budget_suspensions
            WHERE subscription_id = \(subscription.rawValue) AND status IN ('pending', 'suspended') AND period_end > \(now)
            ORDER BY budget
            """, logger: logger
        ).decode((String, Date, Date).self) {
            holding.append((row.0, row.1, row.2))
        }
        if oneOffIncrease != nil && holding.isEmpty { throw SubscriptionControlError.nothingToIncrease(subscription) }
        let why = SuspensionReason(budget: nil, message: reason, actor: actor)
        let outcome = try await suspender.resume(subscription, reason: why, onlyIfSuspendedByRulesEngine: false, logger: logger)
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(
                """
                UPDATE budget_suspensions SET status = 'released', released_at = now(), released_by = \(actor), adapter_result = \(outcome.rawValue)
                WHERE subscription_id = \(subscription.rawValue) AND status IN ('pending', 'suspended')
                """, logger: logger)
            if let increase = oneOffIncrease {
                for hold in holding {
                    let period = BillingPeriod(start: hold.periodStart, end: hold.periodEnd)
                    try await tx.query(
                        """
                        INSERT INTO budget_adjustments (budget, period_start, amount, actor, reason)
                        VALUES (\(hold.budget), \(hold.periodStart), \(increase), \(actor), \(reason))
                        """, logger: logger)
                    // Re-arm the thresholds that current use no longer reaches under the raised limit, so the budget
                    // can alert and suspend again later in the period.
                    try await tx.query(
                        """
                        WITH b AS (
                            SELECT b.name, b.limit_amount + coalesce((SELECT sum(a.amount) FROM budget_adjustments a
                                                                     WHERE a.budget = b.name AND a.period_start = \(hold.periodStart)), 0) AS effective,
                                   tollgate_budget_measure(b.scope_kind, b.scope_value, b.metric, b.currency, \(hold.periodStart), \(hold.periodEnd)) AS used
                            FROM budgets b WHERE b.name = \(hold.budget))
                        DELETE FROM budget_firings f USING b
                        WHERE f.budget = b.name AND f.period_start = \(hold.periodStart) AND f.signal = 'threshold'
                          AND b.used < b.effective * f.percent / 100
                        """, logger: logger)
                    try await BudgetAudit.append(
                        .init(
                            budget: hold.budget, subscription: subscription, period: period, event: "limit_increased", limit: increase,
                            action: "increase", actor: actor, reason: reason),
                        on: tx, logger: logger)
                }
            }
            try await BudgetAudit.append(
                .init(
                    budget: holding.first?.budget, subscription: subscription, event: outcome == .refused ? "resume_skipped" : "reactivated",
                    action: "resume", adapter: suspender.name, adapterResult: outcome.rawValue, actor: actor, reason: reason),
                on: tx, logger: logger)
            if outcome == .changed {
                let payload = SubscriptionStatePayload(
                    subscription: subscription.rawValue, budget: holding.first?.budget, state: SubscriptionState.active.rawValue, reason: reason,
                    actor: actor, adapter: suspender.name, resetsAt: nil)
                try await WebhookOutbox.enqueue(WebhookMessage(type: .reactivated, occurredAt: now, data: payload), on: tx, logger: logger)
            }
        }
        logger.info(
            "Subscription resumed by hand",
            metadata: [
                "subscription.id": "\(subscription)", "actor": "\(actor)", "budget.increase": "\(oneOffIncrease.map { "\($0)" } ?? "none")",
            ])
        return SubscriptionChange(
            subscription: subscription.rawValue,
            state: outcome == .refused ? SubscriptionState.suspended.rawValue : SubscriptionState.active.rawValue,
            outcome: outcome.rawValue, increasedBudgets: oneOffIncrease == nil ? [] : holding.map(\.budget))
    }

    /// The audit trail of one subscription, oldest first.
    public func history(of subscription: SubscriptionID, limit: Int = 200, logger: Logger) async throws -> [BudgetAuditEntry] {
        try await BudgetAudit.read(client: client, subscription: subscription, budget: nil, limit: limit, logger: logger)
    }

    private func currentState(_ subscription: SubscriptionID, logger: Logger) async throws -> String {
        let rows = try await client.query("SELECT state FROM subscriptions WHERE id = \(subscription.rawValue)", logger: logger)
        guard let state = try await rows.collect().first?.decode(String.self) else {
            throw SubscriptionControlError.unknownSubscription(subscription)
        }
        return state
    }
}

// MARK: - Admin API

/// Body of `PATCH /admin/v1/subscriptions/{id}`: `{"state": "suspended" | "active", "reason": "…", "increase": "5000"}`.
public struct SubscriptionStatePatch: Sendable, Hashable, Codable {
    public var state: SubscriptionState
    public var reason: String
    /// Decimal text; with `state: active` only.
    public var increase: String?

    public init(state: SubscriptionState, reason: String, increase: String? = nil) {
        self.state = state
        self.reason = reason
        self.increase = increase
    }
}

public enum SubscriptionPatchError: Error, Hashable, Sendable, CustomStringConvertible {
    case unsupportedState(String)
    case invalidIncrease
    public var description: String {
        switch self {
        case .unsupportedState(let state): "state must be 'active' or 'suspended', not '\(state)'"
        case .invalidIncrease: "increase must be a positive decimal number, and only with state 'active'"
        }
    }
}

extension SubscriptionControl {
    /// The admin route's logic, for the server to call after authenticating the administrator:
    /// `PATCH /admin/v1/subscriptions/{id}` → `try await control.apply(patch, to: id, actor: "admin:\(name)", logger:)`.
    /// Map `SubscriptionControlError.unknownSubscription` to 404 and the other errors to 400.
    public func apply(_ patch: SubscriptionStatePatch, to subscription: SubscriptionID, actor: String, logger: Logger) async throws
        -> SubscriptionChange
    {
        switch patch.state {
        case .suspended:
            guard patch.increase == nil else { throw SubscriptionPatchError.invalidIncrease }
            return try await suspend(subscription: subscription, reason: patch.reason, actor: actor, logger: logger)
        case .active:
            var increase: Decimal?
            if let text = patch.increase {
                guard let value = Decimal(exactly: text), value > 0 else { throw SubscriptionPatchError.invalidIncrease }
                increase = value
            }
            return try await resume(subscription: subscription, reason: patch.reason, actor: actor, oneOffIncrease: increase, logger: logger)
        case .cancelled:
            throw SubscriptionPatchError.unsupportedState(patch.state.rawValue)
        }
    }
}
