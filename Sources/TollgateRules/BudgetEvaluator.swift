import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

/// Settings of the budget evaluator.
public struct BudgetEvaluatorConfiguration: Sendable {
    /// Safety net next to LISTEN `tollgate_usage`: every budget is evaluated at least this often (rollover is found this way).
    public var sweepInterval: Duration
    /// How often a follower tries to take the leader lock.
    public var leaderRetryInterval: Duration
    /// How often the leader checks that its lock connection is alive.
    public var heartbeatInterval: Duration
    /// The PostgreSQL advisory lock key whose holder is the one evaluator. Below 2^31, so `pg_locks.objid` shows it as is.
    public var leaderLockKey: Int

    public init(
        sweepInterval: Duration = .seconds(10), leaderRetryInterval: Duration = .seconds(1), heartbeatInterval: Duration = .seconds(2),
        leaderLockKey: Int = 742_819_020
    ) {
        self.sweepInterval = sweepInterval
        self.leaderRetryInterval = leaderRetryInterval
        self.heartbeatInterval = heartbeatInterval
        self.leaderLockKey = leaderLockKey
    }
}

/// What one evaluation pass did.
public struct BudgetEvaluationReport: Sendable, Hashable {
    public struct Firing: Sendable, Hashable {
        public var budget: String
        /// Threshold percent, or 0 for the forecast alert.
        public var percent: Int
    }
    public var fired: [Firing] = []
    public var suspended: [SubscriptionID] = []
    public var reactivated: [SubscriptionID] = []
    public init() {}
}

/// Evaluates budgets against usage as it lands, fires each threshold once per period, suspends through a
/// `SubscriptionSuspender` and re-enables at rollover, writing the audit trail and queueing webhooks as it goes.
///
/// Every instance may run one; only the leader (`LeaderElection`: in PostgreSQL a session advisory lock on a connection
/// kept for that purpose, where it also LISTENs for `tollgate_usage`) evaluates. When that session dies the lease is
/// free again, and another instance takes over within `leaderRetryInterval`. `RulesTransaction.recordFiring` keeps a
/// threshold firing once even if two evaluators ever overlap during a change of leader.
public final class BudgetEvaluator: Service, Sendable {
    let budgets: any BudgetRepository
    let subscriptions: any SubscriptionStateRepository
    let leadership: any LeaderElection
    let suspender: any SubscriptionSuspender
    let configuration: BudgetEvaluatorConfiguration
    let now: @Sendable () -> Date
    let logger: Logger
    private let wake = WakeSignal()
    private let leader = Mutex(false)

    /// - Parameters:
    ///   - budgets: budgets, their period state, the audit trail, and the transactions the engine writes in.
    ///   - subscriptions: the holds budgets place on subscriptions.
    ///   - leadership: who evaluates (`PostgresDatabase.leaderElection`).
    ///   - suspender: where `suspend` actions take effect (`TollgateSuspender`, `AzureAPIMSuspender`, or both via `CompositeSuspender`).
    ///   - now: the clock budgets are evaluated at; tests stand it on a period's last second.
    public init(
        budgets: any BudgetRepository, subscriptions: any SubscriptionStateRepository, leadership: any LeaderElection,
        suspender: any SubscriptionSuspender, configuration: BudgetEvaluatorConfiguration = .init(), now: @escaping @Sendable () -> Date = { Date() },
        logger: Logger
    ) {
        self.budgets = budgets
        self.subscriptions = subscriptions
        self.leadership = leadership
        self.suspender = suspender
        self.configuration = configuration
        self.now = now
        self.logger = logger
    }

    /// True while this instance holds the evaluator lock.
    public var isLeader: Bool { leader.withLock { $0 } }

    // MARK: - Service

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await self.leadWhileHoldingLock() }
            } catch {
                if !Task.isCancelled && !Task.isShuttingDownGracefully {
                    logger.warning("Budget evaluator lost its lock connection", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.configuration.leaderRetryInterval) }
        }
    }

    /// Takes the lead if it is free and evaluates until the lease is lost or the task is cancelled; returns at once when
    /// another instance leads.
    private func leadWhileHoldingLock() async throws {
        _ = try await leadership.lead(
            key: configuration.leaderLockKey, heartbeatInterval: configuration.heartbeatInterval, listeningTo: .usage,
            onChange: { [wake] in wake.signal() }
        ) {
            self.leader.withLock { $0 = true }
            self.logger.info("Budget evaluator leadership acquired")
            defer {
                self.leader.withLock { $0 = false }
                self.logger.info("Budget evaluator leadership released")
            }
            try await self.evaluationLoop()
        }
    }

    private func evaluationLoop() async throws {
        while true {
            try Task.checkCancellation()
            do {
                try await evaluateNow()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                logger.error("Budget evaluation failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            await wake.wait(timeout: configuration.sweepInterval)
        }
    }

    // MARK: - Evaluation

    /// One pass: every budget at `now()`, pending suspensions retried, finished periods rolled over.
    /// The service loop calls it while leading; tests call it directly.
    @discardableResult
    public func evaluateNow() async throws -> BudgetEvaluationReport {
        let instant = now()
        var report = BudgetEvaluationReport()
        for budget in try await budgets.all(logger: logger) {
            do {
                try await evaluate(budget, at: instant, report: &report)
            } catch {
                if Task.isCancelled { throw error }  // shutting down: not a failure worth an operator's attention
                logger.error("Budget evaluation failed", metadata: ["budget.name": "\(budget.name)", "error": "\(String(reflecting: error))"])
            }
        }
        try await applyPendingSuspensions(at: instant, report: &report)
        try await rollOver(at: instant, report: &report)
        return report
    }

    private func evaluate(_ budget: BudgetDefinition, at instant: Date, report: inout BudgetEvaluationReport) async throws {
        let period = budget.period(at: instant)
        let state = try await budgets.state(of: budget, in: period, logger: logger)
        let measured = state.measured
        let evaluation = BudgetEvaluation(
            budget: budget, now: instant, measured: measured, increase: state.increase, alreadyFired: state.firedThresholds,
            forecastFired: state.forecastFired)
        guard !evaluation.crossed.isEmpty || evaluation.forecastExceeded else { return }
        let alreadyExceeded = state.firedThresholds.contains { $0 >= 100 }
        let payloadBudget = BudgetPayload(budget, period: period)
        let limit = evaluation.effectiveLimit
        let firings = try await budgets.transaction(logger: logger) { tx -> [BudgetEvaluationReport.Firing] in
            var firings: [BudgetEvaluationReport.Firing] = []
            var exceededSent = alreadyExceeded
            for threshold in evaluation.crossed {
                let firing = BudgetFiring(
                    budget: budget.name, period: period, signal: .threshold, percent: threshold.percent, measured: measured, limit: limit)
                guard try await tx.recordFiring(firing) else { continue }  // another evaluator fired it first
                firings.append(.init(budget: budget.name, percent: threshold.percent))
                let isExceeded = threshold.percent >= 100
                try await tx.appendAudit(
                    .init(
                        budget: budget.name, period: period, event: isExceeded ? "exceeded" : "threshold_crossed", measured: measured,
                        limit: limit, thresholdPercent: threshold.percent, action: threshold.action.rawValue, actor: rulesEngineActor))
                let payload = ThresholdCrossedPayload(
                    budget: payloadBudget, threshold: .init(percent: threshold.percent, action: threshold.action.rawValue),
                    measured: measured.payloadText, limit: limit.payloadText, percentUsed: evaluation.percent.payloadText)
                try await tx.enqueue(WebhookMessage(type: .thresholdCrossed, occurredAt: instant, data: payload))
                if isExceeded && !exceededSent {
                    exceededSent = true
                    try await tx.enqueue(WebhookMessage(type: .exceeded, occurredAt: instant, data: payload))
                }
                if threshold.action == .suspend {
                    try await planSuspensions(budget, period: period, measured: measured, limit: limit, threshold: threshold, on: tx)
                }
            }
            if evaluation.forecastExceeded, let forecast = evaluation.forecast {
                let firing = BudgetFiring(budget: budget.name, period: period, signal: .forecast, percent: 0, measured: measured, limit: limit)
                if try await tx.recordFiring(firing) {
                    firings.append(.init(budget: budget.name, percent: 0))
                    try await tx.appendAudit(
                        .init(
                            budget: budget.name, period: period, event: "forecast_exceeded", measured: measured, limit: limit,
                            action: BudgetAction.alert.rawValue, actor: rulesEngineActor, reason: "forecast \(forecast.rounded(scale: 2))"))
                    let payload = ForecastExceededPayload(
                        budget: payloadBudget, measured: measured.payloadText, limit: limit.payloadText,
                        forecast: forecast.rounded(scale: 2).payloadText)
                    try await tx.enqueue(WebhookMessage(type: .forecastExceeded, occurredAt: instant, data: payload))
                }
            }
            return firings
        }
        for firing in firings {
            logger.info(
                "Budget threshold fired",
                metadata: [
                    "budget.name": "\(firing.budget)", "budget.threshold_percent": "\(firing.percent)", "budget.measured": "\(measured)",
                    "budget.limit": "\(limit)",
                ])
        }
        report.fired += firings
    }

    /// Records, in the firing's transaction, which subscriptions the rules engine will suspend. Subscriptions that are
    /// not active (an administrator suspended them, or they are cancelled) are left to their owner and noted in the audit.
    private func planSuspensions(
        _ budget: BudgetDefinition, period: BillingPeriod, measured: Decimal, limit: Decimal, threshold: BudgetThreshold, on tx: any RulesTransaction
    ) async throws {
        let plan = SuspensionPlan(covering: try await tx.subscriptions(in: budget.scope))
        for subscription in plan.hold {
            try await tx.hold(subscription, for: budget.name, period: period)
        }
        for skipped in plan.leave {
            try await tx.appendAudit(
                .init(
                    budget: budget.name, subscription: skipped.id, period: period, event: "suspend_skipped", measured: measured,
                    limit: limit, thresholdPercent: threshold.percent, action: BudgetAction.suspend.rawValue,
                    adapterResult: "subscription is \(skipped.state), set by \(skipped.actor)", actor: rulesEngineActor))
        }
    }

    /// The message a suspended caller reads in the 403.
    static func suspensionMessage(budget: String, resetsAt: Date) -> String {
        "Budget '\(budget)' is exhausted for the current period; access resumes at \(resetsAt.iso8601)."
    }

    /// Applies decided suspensions through the adapter. A failure leaves the row pending; the next pass retries it.
    private func applyPendingSuspensions(at instant: Date, report: inout BudgetEvaluationReport) async throws {
        for hold in try await subscriptions.pendingHolds(endingAfter: instant, logger: logger) {
            let (budget, subscription, period) = (hold.budget, hold.subscription, hold.period)
            let reason = SuspensionReason(
                budget: budget, message: Self.suspensionMessage(budget: budget, resetsAt: period.end), actor: rulesEngineActor)
            let outcome: SuspenderOutcome
            do {
                outcome = try await suspender.suspend(subscription, reason: reason, logger: logger)
            } catch {
                logger.error(
                    "Suspension through the management API failed; will retry",
                    metadata: [
                        "subscription.id": "\(subscription)", "budget.name": "\(budget)", "suspender": "\(suspender.name)", "error": "\(error)",
                    ])
                let result = "error: \(error)"
                try await budgets.transaction(logger: logger) { tx in
                    try await tx.noteHoldFailure(hold.key, result: result)
                    if hold.adapterResult == nil {  // audit the first failure, not every retry
                        try await tx.appendAudit(
                            .init(
                                budget: budget, subscription: subscription, period: period, event: "suspend_failed", action: "suspend",
                                adapter: suspender.name, adapterResult: result, actor: rulesEngineActor, reason: reason.message))
                    }
                }
                continue
            }
            try await budgets.transaction(logger: logger) { tx in
                try await tx.markHoldApplied(hold.key, status: outcome == .refused ? .superseded : .suspended, result: outcome.rawValue)
                try await tx.appendAudit(
                    .init(
                        budget: budget, subscription: subscription, period: period, event: outcome == .refused ? "suspend_skipped" : "suspended",
                        action: "suspend", adapter: suspender.name, adapterResult: outcome.rawValue, actor: rulesEngineActor, reason: reason.message))
                if outcome == .changed {
                    let payload = SubscriptionStatePayload(
                        subscription: subscription.rawValue, budget: budget, state: SubscriptionState.suspended.rawValue, reason: reason.message,
                        actor: rulesEngineActor, adapter: suspender.name, resetsAt: period.end.iso8601)
                    try await tx.enqueue(WebhookMessage(type: .suspended, occurredAt: instant, data: payload))
                }
            }
            if outcome == .changed {
                report.suspended.append(subscription)
                logger.info(
                    "Subscription suspended",
                    metadata: ["subscription.id": "\(subscription)", "budget.name": "\(budget)", "suspender": "\(suspender.name)"])
            }
        }
    }

    /// Releases what the rules engine suspended for periods that have ended, re-enabling a subscription only when no
    /// other budget still holds it and it is still suspended by the rules engine (never one an administrator suspended).
    private func rollOver(at instant: Date, report: inout BudgetEvaluationReport) async throws {
        for ended in try await subscriptions.endedHolds(at: instant, logger: logger) {
            let hold = ended.hold
            let (budget, subscription, period) = (hold.budget, hold.subscription, hold.period)
            switch RolloverDecision(ended) {
            case .supersede(let why):
                try await budgets.transaction(logger: logger) { tx in
                    try await tx.endHold(hold.key, status: .superseded, by: rulesEngineActor, result: why)
                }
                continue
            case .resume:
                break
            }
            let reason = SuspensionReason(
                budget: budget, message: "Budget '\(budget)' period ended at \(period.end.iso8601); a new period started.", actor: rulesEngineActor)
            let outcome: SuspenderOutcome
            do {
                outcome = try await suspender.resume(subscription, reason: reason, onlyIfSuspendedByRulesEngine: true, logger: logger)
            } catch {
                logger.error(
                    "Reactivation through the management API failed; will retry",
                    metadata: [
                        "subscription.id": "\(subscription)", "budget.name": "\(budget)", "error": "\(error)",
                    ])
                continue
            }
            try await budgets.transaction(logger: logger) { tx in
                try await tx.endHold(hold.key, status: outcome == .changed ? .released : .superseded, by: rulesEngineActor, result: outcome.rawValue)
                try await tx.appendAudit(
                    .init(
                        budget: budget, subscription: subscription, period: period, event: outcome == .changed ? "reactivated" : "resume_skipped",
                        action: "resume", adapter: suspender.name, adapterResult: outcome.rawValue, actor: rulesEngineActor, reason: reason.message))
                if outcome == .changed {
                    let payload = SubscriptionStatePayload(
                        subscription: subscription.rawValue, budget: budget, state: SubscriptionState.active.rawValue, reason: reason.message,
                        actor: rulesEngineActor, adapter: suspender.name, resetsAt: nil)
                    try await tx.enqueue(WebhookMessage(type: .reactivated, occurredAt: instant, data: payload))
                }
            }
            if outcome == .changed {
                report.reactivated.append(subscription)
                logger.info("Subscription reactivated at rollover", metadata: ["subscription.id": "\(subscription)", "budget.name": "\(budget)"])
            }
        }
    }
}
