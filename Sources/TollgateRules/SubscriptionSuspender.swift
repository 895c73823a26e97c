import Foundation
import Logging
import TollgateCore
import TollgateStore

/// Why a subscription's state is being changed, and by whom.
public struct SuspensionReason: Hashable, Sendable {
    /// The budget that triggered it; nil for a manual change.
    public var budget: String?
    /// Shown to callers in the 403 (`state_reason`), so written for them: names the budget and when it resets.
    public var message: String
    /// `rules-engine` or `admin:<name>`.
    public var actor: String

    public init(budget: String?, message: String, actor: String) {
        self.budget = budget
        self.message = message
        self.actor = actor
    }
}

/// What an adapter did.
public enum SuspenderOutcome: String, Hashable, Sendable {
    /// The state was changed.
    case changed
    /// The subscription was already in the wanted state; nothing was sent.
    case alreadyInState = "already_in_state"
    /// The subscription is in a state the adapter must not override (suspended by an administrator, or cancelled).
    case refused
}

/// A management API that can suspend and reactivate a subscription: Tollgate's own catalog, Azure API Management, ….
/// Implementations are idempotent: asking for the state a subscription is already in sends no change.
public protocol SubscriptionSuspender: Sendable {
    /// Short stable name for the audit trail (`tollgate`, `azure-apim`).
    var name: String { get }
    @discardableResult
    func suspend(_ subscription: SubscriptionID, reason: SuspensionReason, logger: Logger) async throws -> SuspenderOutcome
    /// - Parameter onlyIfSuspendedByRulesEngine: true at rollover, so a subscription an administrator suspended stays suspended.
    @discardableResult
    func resume(_ subscription: SubscriptionID, reason: SuspensionReason, onlyIfSuspendedByRulesEngine: Bool, logger: Logger) async throws
        -> SuspenderOutcome
}

/// The actor name the rules engine writes into `subscriptions.state_actor`.
public let rulesEngineActor = "rules-engine"

/// Suspends through Tollgate's own catalog: sets `subscriptions.state`, whose trigger NOTIFYs every gateway instance,
/// which reloads and answers 403 from then on.
public struct TollgateSuspender: SubscriptionSuspender {
    public let subscriptions: any SubscriptionStateRepository
    public var name: String { "tollgate" }

    public init(subscriptions: any SubscriptionStateRepository) { self.subscriptions = subscriptions }

    @discardableResult
    public func suspend(_ subscription: SubscriptionID, reason: SuspensionReason, logger: Logger) async throws -> SuspenderOutcome {
        // Conditional rather than `setState`: an administrator's suspension (or a cancellation) made a moment earlier is
        // never overwritten.
        guard let change = try await subscriptions.suspendIfActive(subscription, reason: reason.message, actor: reason.actor, logger: logger) else {
            throw SuspenderError.unknownSubscription(subscription)
        }
        return SuspenderOutcome(change, wanted: .suspended)
    }

    @discardableResult
    public func resume(_ subscription: SubscriptionID, reason: SuspensionReason, onlyIfSuspendedByRulesEngine: Bool, logger: Logger) async throws
        -> SuspenderOutcome
    {
        guard
            let change = try await subscriptions.resumeIfSuspended(
                subscription, actor: reason.actor, onlyIfSetBy: onlyIfSuspendedByRulesEngine ? rulesEngineActor : nil, logger: logger)
        else {
            throw SuspenderError.unknownSubscription(subscription)
        }
        return SuspenderOutcome(change, wanted: .active)
    }
}

/// Applies a transition through several management APIs in order (Tollgate's catalog first, then Azure API Management),
/// so Tollgate's own gateway and an APIM in front of it agree. The first adapter decides whether the change is allowed:
/// when it refuses, the others are not asked.
public struct CompositeSuspender: SubscriptionSuspender {
    public let adapters: [any SubscriptionSuspender]
    public var name: String { adapters.map(\.name).joined(separator: "+") }

    public init(_ adapters: [any SubscriptionSuspender]) { self.adapters = adapters }

    @discardableResult
    public func suspend(_ subscription: SubscriptionID, reason: SuspensionReason, logger: Logger) async throws -> SuspenderOutcome {
        var outcome = SuspenderOutcome.alreadyInState
        for (index, adapter) in adapters.enumerated() {
            let result = try await adapter.suspend(subscription, reason: reason, logger: logger)
            if index == 0 && result == .refused { return .refused }
            if result == .changed { outcome = .changed }
        }
        return outcome
    }

    @discardableResult
    public func resume(_ subscription: SubscriptionID, reason: SuspensionReason, onlyIfSuspendedByRulesEngine: Bool, logger: Logger) async throws
        -> SuspenderOutcome
    {
        var outcome = SuspenderOutcome.alreadyInState
        for (index, adapter) in adapters.enumerated() {
            let result = try await adapter.resume(
                subscription, reason: reason, onlyIfSuspendedByRulesEngine: onlyIfSuspendedByRulesEngine, logger: logger)
            if index == 0 && result == .refused { return .refused }
            if result == .changed { outcome = .changed }
        }
        return outcome
    }
}

public enum SuspenderError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknownSubscription(SubscriptionID)
    /// The management API answered something the adapter cannot act on. `status` is the HTTP status; no body is kept.
    case managementAPI(status: Int, operation: String)
    /// Retries exhausted (429 or 5xx every time, or the ETag kept changing).
    case gaveUp(operation: String, attempts: Int)
    case tokenRequestFailed(status: Int)

    public var description: String {
        switch self {
        case .unknownSubscription(let id): "no subscription '\(id)'"
        case .managementAPI(let status, let operation): "management API answered \(status) to \(operation)"
        case .gaveUp(let operation, let attempts): "gave up on \(operation) after \(attempts) attempts"
        case .tokenRequestFailed(let status): "token endpoint answered \(status)"
        }
    }
}
