import Foundation
import Logging
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
    public let budgets: any BudgetRepository
    public let subscriptions: any SubscriptionStateRepository
    public let suspender: any SubscriptionSuspender

    /// - Parameters:
    ///   - budgets: the audit trail, adjustments, and the transactions changes are written in.
    ///   - subscriptions: subscription state and budget holds.
    public init(budgets: any BudgetRepository, subscriptions: any SubscriptionStateRepository, suspender: any SubscriptionSuspender) {
        self.budgets = budgets
        self.subscriptions = subscriptions
        self.suspender = suspender
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
        guard try await subscriptions.setState(subscription, to: .suspended, reason: reason, actor: actor, logger: logger) else {
            throw SubscriptionControlError.unknownSubscription(subscription)
        }
        let why = SuspensionReason(budget: nil, message: reason, actor: actor)
        let adapterOutcome = try await suspender.suspend(subscription, reason: why, logger: logger)
        let changed = before != SubscriptionState.suspended.rawValue || adapterOutcome == .changed
        try await budgets.transaction(logger: logger) { tx in
            try await tx.endHolds(of: subscription, status: .superseded, by: actor, result: "suspended by hand")
            try await tx.appendAudit(
                .init(
                    subscription: subscription, event: "suspended", action: "suspend", adapter: suspender.name,
                    adapterResult: adapterOutcome.rawValue, actor: actor, reason: reason))
            if changed {
                let payload = SubscriptionStatePayload(
                    subscription: subscription.rawValue, budget: nil, state: SubscriptionState.suspended.rawValue, reason: reason, actor: actor,
                    adapter: suspender.name, resetsAt: nil)
                try await tx.enqueue(WebhookMessage(type: .suspended, occurredAt: now, data: payload))
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
        let holding = try await subscriptions.liveHolds(of: subscription, endingAfter: now, logger: logger)
        if oneOffIncrease != nil && holding.isEmpty { throw SubscriptionControlError.nothingToIncrease(subscription) }
        let why = SuspensionReason(budget: nil, message: reason, actor: actor)
        let outcome = try await suspender.resume(subscription, reason: why, onlyIfSuspendedByRulesEngine: false, logger: logger)
        try await budgets.transaction(logger: logger) { tx in
            try await tx.endHolds(of: subscription, status: .released, by: actor, result: outcome.rawValue)
            if let increase = oneOffIncrease {
                for hold in holding {
                    try await tx.addAdjustment(budget: hold.budget, periodStart: hold.period.start, amount: increase, actor: actor, reason: reason)
                    // Re-arm the thresholds that current use no longer reaches under the raised limit, so the budget
                    // can alert and suspend again later in the period.
                    try await tx.rearmThresholds(budget: hold.budget, period: hold.period)
                    try await tx.appendAudit(
                        .init(
                            budget: hold.budget, subscription: subscription, period: hold.period, event: "limit_increased", limit: increase,
                            action: "increase", actor: actor, reason: reason))
                }
            }
            try await tx.appendAudit(
                .init(
                    budget: holding.first?.budget, subscription: subscription, event: outcome == .refused ? "resume_skipped" : "reactivated",
                    action: "resume", adapter: suspender.name, adapterResult: outcome.rawValue, actor: actor, reason: reason))
            if outcome == .changed {
                let payload = SubscriptionStatePayload(
                    subscription: subscription.rawValue, budget: holding.first?.budget, state: SubscriptionState.active.rawValue, reason: reason,
                    actor: actor, adapter: suspender.name, resetsAt: nil)
                try await tx.enqueue(WebhookMessage(type: .reactivated, occurredAt: now, data: payload))
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
        try await budgets.audit(subscription: subscription, budget: nil, limit: limit, logger: logger)
    }

    private func currentState(_ subscription: SubscriptionID, logger: Logger) async throws -> String {
        guard let row = try await subscriptions.state(of: subscription, logger: logger) else {
            throw SubscriptionControlError.unknownSubscription(subscription)
        }
        return row.state
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
