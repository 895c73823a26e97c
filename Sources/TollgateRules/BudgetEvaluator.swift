import Foundation
import Logging
import NIOSSL
import PostgresNIO
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
/// Every instance may run one; only the holder of a PostgreSQL session advisory lock (on a connection it keeps for
/// that purpose, where it also LISTENs for `tollgate_usage`) evaluates. When that connection dies the server releases the
/// lock, and another instance takes over within `leaderRetryInterval`. The unique keys of `budget_firings` keep a
/// threshold firing once even if two evaluators ever overlap during a change of leader.
public final class BudgetEvaluator: Service, Sendable {
    let client: PostgresClient
    let lockConnection: PostgresConnection.Configuration
    let store: BudgetStore
    let suspender: any SubscriptionSuspender
    let configuration: BudgetEvaluatorConfiguration
    let now: @Sendable () -> Date
    let logger: Logger
    private let wake = WakeSignal()
    private let leader = Mutex(false)

    /// - Parameters:
    ///   - client: the shared pool, for reading usage and writing state.
    ///   - lockConnection: where to open the dedicated session that holds the leader lock and LISTENs
    ///     (`DatabaseLocation.lockConnectionConfiguration()`).
    ///   - suspender: where `suspend` actions take effect (`TollgateSuspender`, `AzureAPIMSuspender`, or both via `CompositeSuspender`).
    ///   - now: the clock budgets are evaluated at; tests stand it on a period's last second.
    public init(
        client: PostgresClient, lockConnection: PostgresConnection.Configuration, suspender: any SubscriptionSuspender,
        configuration: BudgetEvaluatorConfiguration = .init(), now: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) {
        self.client = client
        self.lockConnection = lockConnection
        self.store = BudgetStore(client: client)
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

    struct LockConnectionLost: Error {}

    /// Opens the dedicated lock connection, takes the lock if free and evaluates until that connection fails or the task
    /// is cancelled; returns at once when another instance leads. The connection is never pooled: closing it is what
    /// gives the lock back, so no code path can leave a lock-holding session idle in a pool.
    private func leadWhileHoldingLock() async throws {
        let connection = try await PostgresConnection.connect(configuration: lockConnection, id: 0, logger: logger)
        do {
            try await lead(on: connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try? await connection.close()
    }

    private func lead(on connection: PostgresConnection) async throws {
        let key = configuration.leaderLockKey
        let logger = self.logger
        let acquired = try await abandoning(after: .seconds(10)) {
            try await connection.query("SELECT pg_try_advisory_lock(\(key))", logger: logger).collect().first?.decode(Bool.self) ?? false
        }
        guard acquired else { return }
        leader.withLock { $0 = true }
        logger.info("Budget evaluator leadership acquired")
        defer {
            leader.withLock { $0 = false }
            logger.info("Budget evaluator leadership released")
        }
        try await connection.listen(on: NotificationChannel.usage.name) { notifications in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.evaluationLoop() }
                group.addTask {
                    for try await _ in notifications { self.wake.signal() }
                    throw LockConnectionLost()
                }
                group.addTask {
                    // A half-open TCP connection delivers no error by itself; a failing (or unanswered) query does.
                    let interval = self.configuration.heartbeatInterval
                    while true {
                        try await Task.sleep(for: interval)
                        guard !connection.isClosed else { throw LockConnectionLost() }
                        try await abandoning(after: max(interval * 4, .seconds(2))) {
                            _ = try await connection.query("SELECT 1", logger: logger)
                        }
                    }
                }
                try await group.next()
                group.cancelAll()
            }
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
        for budget in try await store.all(logger: logger) {
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
        let rows = try await client.query(
            """
            SELECT tollgate_budget_measure(\(budget.scope.kind), \(budget.scope.target), \(budget.metric.rawValue), \(budget.currency),
                                           \(period.start), \(period.end)),
                   (SELECT coalesce(sum(amount), 0) FROM budget_adjustments WHERE budget = \(budget.name) AND period_start = \(period.start)),
                   (SELECT coalesce(array_agg(percent), '{}') FROM budget_firings
                    WHERE budget = \(budget.name) AND period_start = \(period.start) AND signal = 'threshold'),
                   EXISTS (SELECT 1 FROM budget_firings WHERE budget = \(budget.name) AND period_start = \(period.start) AND signal = 'forecast')
            """, logger: logger)
        guard let (measured, increase, fired, forecastFired) = try await rows.collect().first?.decode((Decimal, Decimal, [Int], Bool).self) else {
            return
        }
        let evaluation = BudgetEvaluation(
            budget: budget, now: instant, measured: measured, increase: increase, alreadyFired: Set(fired), forecastFired: forecastFired)
        guard !evaluation.crossed.isEmpty || evaluation.forecastExceeded else { return }
        let alreadyExceeded = fired.contains { $0 >= 100 }
        let payloadBudget = BudgetPayload(budget, period: period)
        let firings = try await client.withTransaction(logger: logger) { tx -> [BudgetEvaluationReport.Firing] in
            var firings: [BudgetEvaluationReport.Firing] = []
            var exceededSent = alreadyExceeded
            for threshold in evaluation.crossed {
                let inserted = try await tx.query(
                    """
                    INSERT INTO budget_firings (budget, period_start, signal, percent, measured, limit_amount)
                    VALUES (\(budget.name), \(period.start), 'threshold', \(threshold.percent), \(measured), \(evaluation.effectiveLimit))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger: logger
                ).collect()
                guard !inserted.isEmpty else { continue }  // another evaluator fired it first
                firings.append(.init(budget: budget.name, percent: threshold.percent))
                let isExceeded = threshold.percent >= 100
                try await BudgetAudit.append(
                    .init(
                        budget: budget.name, period: period, event: isExceeded ? "exceeded" : "threshold_crossed", measured: measured,
                        limit: evaluation.effectiveLimit, thresholdPercent: threshold.percent, action: threshold.action.rawValue,
                        actor: rulesEngineActor),
                    on: tx, logger: logger)
                let payload = ThresholdCrossedPayload(
                    budget: payloadBudget, threshold: .init(percent: threshold.percent, action: threshold.action.rawValue),
                    measured: measured.payloadText, limit: evaluation.effectiveLimit.payloadText, percentUsed: evaluation.percent.payloadText)
                try await WebhookOutbox.enqueue(WebhookMessage(type: .thresholdCrossed, occurredAt: instant, data: payload), on: tx, logger: logger)
                if isExceeded && !exceededSent {
                    exceededSent = true
                    try await WebhookOutbox.enqueue(WebhookMessage(type: .exceeded, occurredAt: instant, data: payload), on: tx, logger: logger)
                }
                if threshold.action == .suspend {
                    try await planSuspensions(
                        budget, period: period, measured: measured, limit: evaluation.effectiveLimit, threshold: threshold, on: tx)
                }
            }
            if evaluation.forecastExceeded, let forecast = evaluation.forecast {
                let inserted = try await tx.query(
                    """
                    INSERT INTO budget_firings (budget, period_start, signal, percent, measured, limit_amount)
                    VALUES (\(budget.name), \(period.start), 'forecast', 0, \(measured), \(evaluation.effectiveLimit))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger: logger
                ).collect()
                if !inserted.isEmpty {
                    firings.append(.init(budget: budget.name, percent: 0))
                    try await BudgetAudit.append(
                        .init(
                            budget: budget.name, period: period, event: "forecast_exceeded", measured: measured, limit: evaluation.effectiveLimit,
                            action: BudgetAction.alert.rawValue, actor: rulesEngineActor, reason: "forecast \(forecast.rounded(scale: 2))"),
                        on: tx, logger: logger)
                    let payload = ForecastExceededPayload(
                        budget: payloadBudget, measured: measured.payloadText, limit: evaluation.effectiveLimit.payloadText,
                        forecast: forecast.rounded(scale: 2).payloadText)
                    try await WebhookOutbox.enqueue(
                        WebhookMessage(type: .forecastExceeded, occurredAt: instant, data: payload), on: tx, logger: logger)
                }
            }
            return firings
        }
        for firing in firings {
            logger.info(
                "Budget threshold fired",
                metadata: [
                    "budget.name": "\(firing.budget)", "budget.threshold_percent": "\(firing.percent)", "budget.measured": "\(measured)",
                    "budget.limit": "\(evaluation.effectiveLimit)",
                ])
        }
        report.fired += firings
    }

    /// Records, in the firing's transaction, which subscriptions the rules engine will suspend. Subscriptions that are
    /// not active (an administrator suspended them, or they are cancelled) are left to their owner and noted in the audit.
    private func planSuspensions(
        _ budget: BudgetDefinition, period: BillingPeriod, measured: Decimal, limit: Decimal, threshold: BudgetThreshold, on tx: PostgresConnection
    ) async throws {
        let rows = try await tx.query(
            """
            SELECT id, state, state_actor FROM subscriptions
            WHERE \(budget.scope.kind) = 'all'
               OR (\(budget.scope.kind) = 'subscription' AND id = \(budget.scope.target))
               OR (\(budget.scope.kind) = 'product' AND product = \(budget.scope.target))
               OR (\(budget.scope.kind) = 'team' AND team = \(budget.scope.target))
               OR (\(budget.scope.kind) = 'cost_center' AND cost_center = \(budget.scope.target))
            ORDER BY id
            """, logger: logger)
        for try await (id, state, actor) in rows.decode((String, String, String).self) {
            if state == SubscriptionState.active.rawValue || actor == rulesEngineActor {
                // A subscription the rules engine already holds for another budget is recorded for this one too, so
                // rollover of the other budget does not release it while this one is still exceeded.
                try await tx.query(
                    """
                    INSERT INTO budget_suspensions (budget, subscription_id, period_start, period_end)
                    VALUES (\(budget.name), \(id), \(period.start), \(period.end))
                    ON CONFLICT (budget, subscription_id, period_start) DO UPDATE SET status = 'pending', requested_at = now(),
                        suspended_at = NULL, released_at = NULL, released_by = NULL, adapter_result = NULL
                    WHERE budget_suspensions.status IN ('released', 'superseded')
                    """, logger: logger)
            } else {
                try await BudgetAudit.append(
                    .init(
                        budget: budget.name, subscription: SubscriptionID(id), period: period, event: "suspend_skipped", measured: measured,
                        limit: limit, thresholdPercent: threshold.percent, action: BudgetAction.suspend.rawValue,
                        adapterResult: "subscription is \(state), set by \(actor)", actor: rulesEngineActor),
                    on: tx, logger: logger)
            }
        }
    }

    /// The message a suspended caller reads in the 403.
    static func suspensionMessage(budget: String, resetsAt: Date) -> String {
        "Budget '\(budget)' is exhausted for the current period; access resumes at \(resetsAt.iso8601)."
    }

    /// Applies decided suspensions through the adapter. A failure leaves the row pending; the next pass retries it.
    private func applyPendingSuspensions(at instant: Date, report: inout BudgetEvaluationReport) async throws {
        let rows = try await client.query(
            """
            SELECT budget, subscription_id, period_start, period_end, adapter_result FROM budget_suspensions
            WHERE status = 'pending' AND period_end > \(instant) ORDER BY requested_at, subscription_id, budget
            """, logger: logger)
        var pending: [(String, String, Date, Date, String?)] = []
        for try await row in rows.decode((String, String, Date, Date, String?).self) { pending.append(row) }
        for (budget, id, start, end, previousResult) in pending {
            let subscription = SubscriptionID(id)
            let period = BillingPeriod(start: start, end: end)
            let reason = SuspensionReason(budget: budget, message: Self.suspensionMessage(budget: budget, resetsAt: end), actor: rulesEngineActor)
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
                try await client.withTransaction(logger: logger) { tx in
                    try await tx.query(
                        """
                        UPDATE budget_suspensions SET adapter_result = \(result)
                        WHERE budget = \(budget) AND subscription_id = \(id) AND period_start = \(start)
                        """, logger: logger)
                    if previousResult == nil {  // audit the first failure, not every retry
                        try await BudgetAudit.append(
                            .init(
                                budget: budget, subscription: subscription, period: period, event: "suspend_failed", action: "suspend",
                                adapter: suspender.name, adapterResult: result, actor: rulesEngineActor, reason: reason.message),
                            on: tx, logger: logger)
                    }
                }
                continue
            }
            try await client.withTransaction(logger: logger) { tx in
                let status = outcome == .refused ? "superseded" : "suspended"
                try await tx.query(
                    """
                    UPDATE budget_suspensions SET status = \(status), suspended_at = now(), adapter_result = \(outcome.rawValue)
                    WHERE budget = \(budget) AND subscription_id = \(id) AND period_start = \(start) AND status = 'pending'
                    """, logger: logger)
                try await BudgetAudit.append(
                    .init(
                        budget: budget, subscription: subscription, period: period, event: outcome == .refused ? "suspend_skipped" : "suspended",
                        action: "suspend", adapter: suspender.name, adapterResult: outcome.rawValue, actor: rulesEngineActor, reason: reason.message),
                    on: tx, logger: logger)
                if outcome == .changed {
                    let payload = SubscriptionStatePayload(
                        subscription: id, budget: budget, state: SubscriptionState.suspended.rawValue, reason: reason.message,
                        actor: rulesEngineActor,
                        adapter: suspender.name, resetsAt: end.iso8601)
                    try await WebhookOutbox.enqueue(WebhookMessage(type: .suspended, occurredAt: instant, data: payload), on: tx, logger: logger)
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
        let rows = try await client.query(
            """
            SELECT s.budget, s.subscription_id, s.period_start, s.period_end, s.status,
                   EXISTS (SELECT 1 FROM budget_suspensions o WHERE o.subscription_id = s.subscription_id
                           AND o.status IN ('pending', 'suspended') AND o.period_end > \(instant))
            FROM budget_suspensions s
            WHERE s.status IN ('pending', 'suspended') AND s.period_end <= \(instant)
            ORDER BY s.period_end, s.subscription_id, s.budget
            """, logger: logger)
        var ended: [(String, String, Date, Date, String, Bool)] = []
        for try await row in rows.decode((String, String, Date, Date, String, Bool).self) { ended.append(row) }
        for (budget, id, start, end, status, stillHeld) in ended {
            let subscription = SubscriptionID(id)
            let period = BillingPeriod(start: start, end: end)
            if status == "pending" || stillHeld {
                try await client.query(
                    """
                    UPDATE budget_suspensions SET status = 'superseded', released_at = now(), released_by = \(rulesEngineActor),
                        adapter_result = \(stillHeld ? "still held by another budget" : "period ended before the suspension applied")
                    WHERE budget = \(budget) AND subscription_id = \(id) AND period_start = \(start)
                    """, logger: logger)
                continue
            }
            let reason = SuspensionReason(
                budget: budget, message: "Budget '\(budget)' period ended at \(end.iso8601); a new period started.", actor: rulesEngineActor)
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
            try await client.withTransaction(logger: logger) { tx in
                try await tx.query(
                    """
                    UPDATE budget_suspensions SET status = \(outcome == .changed ? "released" : "superseded"), released_at = now(),
                        released_by = \(rulesEngineActor), adapter_result = \(outcome.rawValue)
                    WHERE budget = \(budget) AND subscription_id = \(id) AND period_start = \(start)
                    """, logger: logger)
                try await BudgetAudit.append(
                    .init(
                        budget: budget, subscription: subscription, period: period, event: outcome == .changed ? "reactivated" : "resume_skipped",
                        action: "resume", adapter: suspender.name, adapterResult: outcome.rawValue, actor: rulesEngineActor, reason: reason.message),
                    on: tx, logger: logger)
                if outcome == .changed {
                    let payload = SubscriptionStatePayload(
                        subscription: id, budget: budget, state: SubscriptionState.active.rawValue, reason: reason.message, actor: rulesEngineActor,
                        adapter: suspender.name, resetsAt: nil)
                    try await WebhookOutbox.enqueue(WebhookMessage(type: .reactivated, occurredAt: instant, data: payload), on: tx, logger: logger)
                }
            }
            if outcome == .changed {
                report.reactivated.append(subscription)
                logger.info("Subscription reactivated at rollover", metadata: ["subscription.id": "\(subscription)", "budget.name": "\(budget)"])
            }
        }
    }
}

extension DatabaseLocation {
    /// Settings for a single connection outside the pool, with the same server, credentials and TLS mode as
    /// `clientConfiguration()`: the budget evaluator's leader-lock session.
    public func lockConnectionConfiguration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password?.value, database: database, tls: tls)
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }
}
