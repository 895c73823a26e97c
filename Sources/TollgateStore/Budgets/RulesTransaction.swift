import Foundation
import TollgateCore

/// The writes of the rules engine that must commit together: a threshold firing, its audit row, the webhook messages that
/// announce it and the suspensions it plans; a suspension applied, its audit row and its message. Handed out by
/// `BudgetRepository.transaction(logger:_:)`; everything done through one handle commits or rolls back as one.
public protocol RulesTransaction: Sendable {
    /// Records `firing` unless the same budget, period, signal and percent fired already (another evaluator, during a
    /// change of leader). - Returns: whether this call recorded it.
    func recordFiring(_ firing: BudgetFiring) async throws -> Bool
    /// Appends one row to the audit trail.
    func appendAudit(_ record: BudgetAuditRecord) async throws
    /// Stores `message` and queues it for every enabled endpoint subscribed to its type.
    /// - Returns: how many endpoints it was queued for.
    @discardableResult
    func enqueue(_ message: WebhookMessage) async throws -> Int
    /// The subscriptions a budget scope covers, by id, with their current state.
    func subscriptions(in scope: BudgetScope) async throws -> [SubscriptionStateRow]
    /// Records that `budget` holds `subscription` suspended in `period` (status `pending` until the adapter applied it).
    /// A hold already released or superseded in that period is re-armed; a live one is left as it is.
    func hold(_ subscription: SubscriptionID, for budget: String, period: BillingPeriod) async throws
    /// Keeps the adapter's error on a pending hold (the next pass retries it).
    func noteHoldFailure(_ hold: BudgetHold.Key, result: String) async throws
    /// A pending hold was applied (`suspended`) or refused by the adapter (`superseded`). Only a hold still pending changes.
    func markHoldApplied(_ hold: BudgetHold.Key, status: BudgetHold.Status, result: String) async throws
    /// Ends one hold (`released` or `superseded`).
    func endHold(_ hold: BudgetHold.Key, status: BudgetHold.Status, by actor: String, result: String) async throws
    /// Ends every live (pending or suspended) hold on `subscription`, whatever budget placed it.
    func endHolds(of subscription: SubscriptionID, status: BudgetHold.Status, by actor: String, result: String) async throws
    /// Raises `budget`'s limit by `amount` for the period starting at `periodStart` only.
    func addAdjustment(budget: String, periodStart: Date, amount: Decimal, actor: String, reason: String) async throws
    /// Forgets the threshold firings of `budget` in `period` that current use no longer reaches under the effective limit
    /// (after an increase), so they can fire again later in the period.
    func rearmThresholds(budget: String, period: BillingPeriod) async throws
}
