import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import TollgateCore
import TollgateStore

/// When to try a failed delivery again: exponential backoff, capped, for a bounded total time.
public struct RetrySchedule: Sendable, Hashable {
    public var initial: Duration
    public var factor: Int
    public var maximum: Duration
    /// No attempt is scheduled later than this after the first one.
    public var giveUpAfter: Duration

    public init(initial: Duration, factor: Int, maximum: Duration, giveUpAfter: Duration) {
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.giveUpAfter = giveUpAfter
    }

    /// 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, then every 6 h, for up to 26 h: the last retry lands more than a day
    /// after the first attempt, so a receiver that is down over a weekend day still gets its messages.
    public static let standard = RetrySchedule(initial: .seconds(5), factor: 4, maximum: .seconds(6 * 3600), giveUpAfter: .seconds(26 * 3600))

    /// The wait before the next attempt, after `failedAttempts` attempts have failed, the first of them `elapsed` ago;
    /// nil when the message should be given up.
    public func delay(afterFailedAttempts failedAttempts: Int, elapsed: Duration) -> Duration? {
        var delay = initial
        for _ in 1..<max(1, failedAttempts) {
            delay = delay * factor
            if delay >= maximum { break }
        }
        if delay > maximum { delay = maximum }
        return elapsed + delay > giveUpAfter ? nil : delay
    }
}

/// Settings of the webhook dispatcher.
public struct WebhookDispatcherConfiguration: Sendable {
    public var targets: WebhookTargetPolicy
    public var retry: RetrySchedule
    public var requestTimeout: Duration
    public var batchSize: Int
    /// Safety net next to LISTEN `tollgate_webhooks`: due retries are picked up at least this often.
    public var pollInterval: Duration
    /// A claimed message is not handed to another dispatcher for this long; a dispatcher that dies mid-send leaves
    /// it to be retried after the lease. Longer than `requestTimeout`.
    public var lease: Duration

    public init(
        targets: WebhookTargetPolicy = .publicOnly, retry: RetrySchedule = .standard, requestTimeout: Duration = .seconds(15),
        batchSize: Int = 32, pollInterval: Duration = .seconds(1), lease: Duration = .seconds(60)
    ) {
        self.targets = targets
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.lease = lease
    }
}

/// Delivers webhook messages from the outbox, signed per Standard Webhooks, retrying with backoff.
///
/// Any number of instances may run one: messages are claimed and leased (`WebhookRepository.claimDue`), so each attempt
/// is made by one dispatcher. Delivery is at least once (a crash after the receiver answered but before the result is
/// recorded means one more attempt), with the same `webhook-id`, so receivers deduplicate on it.
public final class WebhookDispatcher: Service, Sendable {
    let webhooks: any WebhookRepository
    let notifications: any ChangeNotifications
    let http: HTTPClient
    let configuration: WebhookDispatcherConfiguration
    let logger: Logger
    private let wake = WakeSignal()

    /// - Parameters:
    ///   - webhooks: the outbox and the delivery log.
    ///   - notifications: where `tollgate_webhooks` wakes the dispatcher when a message is enqueued.
    ///   - http: the process's shared client (redirects disallowed: a receiver must not bounce us elsewhere).
    public init(
        webhooks: any WebhookRepository, notifications: any ChangeNotifications, http: HTTPClient,
        configuration: WebhookDispatcherConfiguration = .init(), logger: Logger
    ) {
        self.webhooks = webhooks
        self.notifications = notifications
        self.http = http
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listenForWakeUps() }
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                do {
                    // Drain: a full batch suggests more is due.
                    while try await deliverDue() >= configuration.batchSize && !Task.isShuttingDownGracefully {}
                } catch {
                    logger.error("Webhook delivery pass failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                await cancelWhenGracefulShutdown { await self.wake.wait(timeout: self.configuration.pollInterval) }
            }
            group.cancelAll()
        }
    }

    private func listenForWakeUps() async {
        // Called once when listening begins too: anything enqueued before LISTEN took effect.
        await notifications.watch(.webhooks) { [wake] in wake.signal() }
    }

    /// Claims what is due and delivers it, concurrently.
    /// - Returns: how many messages were attempted.
    @discardableResult
    public func deliverDue() async throws -> Int {
        let claimed = try await webhooks.claimDue(limit: configuration.batchSize, lease: configuration.lease, logger: logger)
        await withTaskGroup(of: Void.self) { group in
            for message in claimed { group.addTask { await self.deliver(message) } }
        }
        return claimed.count
    }

    enum Result {
        case delivered(status: Int)
        case gone(status: Int)
        case failed(status: Int?, error: String, retryable: Bool)
    }

    private func deliver(_ message: ClaimedWebhook) async {
        var logger = logger
        logger[metadataKey: "webhook.id"] = "\(message.messageID)"
        logger[metadataKey: "webhook.endpoint_id"] = "\(message.endpointID)"
        logger[metadataKey: "webhook.attempt"] = "\(message.attempt)"
        let attemptedAt = Date()
        let started = ContinuousClock.now
        let result = await attempt(message, logger: logger)
        let duration = ContinuousClock.now - started
        do {
            // Recorded in a task of its own, so a shutdown that cancels the pass cannot lose a result the receiver
            // already acted on (the message would wait out its lease and go again).
            try await Task { try await self.record(result, for: message, attemptedAt: attemptedAt, duration: duration, logger: logger) }.value
        } catch {
            // The lease runs out and the message is tried again: at least once, never lost.
            logger.error("Recording a webhook attempt failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    private func attempt(_ message: ClaimedWebhook, logger: Logger) async -> Result {
        do {
            try await configuration.targets.check(message.url)
        } catch {
            logger.warning("Webhook target refused", metadata: ["error": "\(error)"])
            return .failed(status: nil, error: error.description, retryable: false)
        }
        let secrets = message.secrets.compactMap { try? WebhookSecret($0) }
        guard !secrets.isEmpty else { return .failed(status: nil, error: "endpoint has no live signing secret", retryable: true) }
        let body = Array(message.body.utf8)
        var request = HTTPClientRequest(url: message.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Tollgate-Webhooks/1")
        let timestamp = Int(Date().timeIntervalSince1970)
        for header in StandardWebhooks.headers(id: message.messageID, timestamp: timestamp, body: body, secrets: secrets) {
            request.headers.add(name: header.name, value: header.value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let response = try await http.execute(request, timeout: .init(configuration.requestTimeout))
            _ = try? await response.body.collect(upTo: 64 * 1024)  // drained so the connection can be reused; never logged
            let status = Int(response.status.code)
            switch status {
            case 200...299: return .delivered(status: status)
            case 410: return .gone(status: status)
            default: return .failed(status: status, error: "receiver answered \(status)", retryable: true)
            }
        } catch {
            return .failed(status: nil, error: "\(error)", retryable: true)
        }
    }

    private func record(_ result: Result, for message: ClaimedWebhook, attemptedAt: Date, duration: Duration, logger: Logger) async throws {
        let milliseconds = Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        let elapsed = Duration.milliseconds(Int(max(0, Date().timeIntervalSince(message.firstAttemptAt)) * 1000))
        let (status, error, outcome) = Self.decide(result, attempt: message.attempt, elapsed: elapsed, retry: configuration.retry)
        try await webhooks.record(
            WebhookAttempt(
                message: message, attemptedAt: attemptedAt, durationMilliseconds: milliseconds, httpStatus: status, error: error, outcome: outcome),
            logger: logger)
        switch outcome {
        case .delivered: logger.debug("Webhook delivered")
        case .endpointGone: logger.warning("Webhook endpoint answered 410 Gone and was disabled")
        case .retry(let delay):
            logger.info(
                "Webhook attempt failed; will retry", metadata: ["http.status": "\(status.map(String.init) ?? "-")", "retry.delay": "\(delay)"])
        case .failed: logger.warning("Webhook given up", metadata: ["http.status": "\(status.map(String.init) ?? "-")"])
        }
    }

    /// What an attempt's result means for the message: the status and error to log, and whether it is done, retried
    /// (after how long) or given up.
    /// - Parameters:
    ///   - attempt: the attempt's number, from 1.
    ///   - elapsed: time since the message's first attempt.
    static func decide(_ result: Result, attempt: Int, elapsed: Duration, retry: RetrySchedule) -> (
        status: Int?, error: String?, outcome: WebhookAttemptOutcome
    ) {
        switch result {
        case .delivered(let code):
            return (code, nil, .delivered)
        case .gone(let code):
            return (code, nil, .endpointGone(reason: "receiver answered 410 Gone"))
        case .failed(let code, let reason, let retryable):
            if retryable, let delay = retry.delay(afterFailedAttempts: attempt, elapsed: elapsed) {
                return (code, reason, .retry(after: delay))
            }
            return (code, reason, .failed)
        }
    }
}
