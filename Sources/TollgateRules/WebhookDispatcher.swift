import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
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

/// Delivers webhook messages from the PostgreSQL outbox, signed per Standard Webhooks, retrying with backoff.
///
/// Any number of instances may run one: rows are claimed with `FOR UPDATE SKIP LOCKED` and leased, so each attempt is
/// made by one dispatcher. Delivery is at least once (a crash after the receiver answered but before the result is
/// recorded means one more attempt), with the same `webhook-id`, so receivers deduplicate on it.
public final class WebhookDispatcher: Service, Sendable {
    let client: PostgresClient
    let http: HTTPClient
    let configuration: WebhookDispatcherConfiguration
    let logger: Logger
    private let wake = WakeSignal()

    /// - Parameter http: the process's shared client (redirects disallowed: a receiver must not bounce us elsewhere).
    public init(client: PostgresClient, http: HTTPClient, configuration: WebhookDispatcherConfiguration = .init(), logger: Logger) {
        self.client = client
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
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: NotificationChannel.webhooks.name) { notifications in
                        self.wake.signal()  // anything enqueued before LISTEN took effect
                        for try await _ in notifications { self.wake.signal() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("Webhook wake-up listener lost its connection", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    struct Claimed: Sendable {
        var messageID: String
        var endpointID: UUID
        var attempt: Int
        var firstAttemptAt: Date
        var eventType: String
        var body: String
        var url: String
        var secrets: [String]
    }

    /// Claims what is due and delivers it, concurrently.
    /// - Returns: how many messages were attempted.
    @discardableResult
    public func deliverDue() async throws -> Int {
        let leaseMilliseconds = Int(configuration.lease.components.seconds * 1000)
        let rows = try await client.query(
            """
            UPDATE webhook_outbox o SET attempts = o.attempts + 1, last_attempt_at = now(),
                first_attempt_at = coalesce(o.first_attempt_at, now()), next_attempt_at = now() + \(leaseMilliseconds) * interval '1 millisecond'
            FROM (SELECT q.message_id, q.endpoint_id FROM webhook_outbox q JOIN webhook_endpoints e ON e.id = q.endpoint_id
                  WHERE q.status = 'pending' AND q.next_attempt_at <= now() AND e.disabled_at IS NULL
                  ORDER BY q.next_attempt_at LIMIT \(configuration.batchSize) FOR UPDATE OF q SKIP LOCKED) due,
                 webhook_messages m, webhook_endpoints e
            WHERE o.message_id = due.message_id AND o.endpoint_id = due.endpoint_id AND m.id = o.message_id AND e.id = o.endpoint_id
            RETURNING o.message_id, o.endpoint_id, o.attempts, o.first_attempt_at, m.event_type, m.body, e.url,
                coalesce((SELECT array_agg(s.secret ORDER BY s.id) FROM webhook_secrets s
                          WHERE s.endpoint_id = o.endpoint_id AND (s.expires_at IS NULL OR s.expires_at > now())), '{}')
            """, logger: logger)
        var claimed: [Claimed] = []
        for try await (message, endpoint, attempt, first, type, body, url, secrets) in rows.decode(
            (String, UUID, Int, Date, String, String, String, [String]).self)
        {
            claimed.append(
                Claimed(
                    messageID: message, endpointID: endpoint, attempt: attempt, firstAttemptAt: first, eventType: type, body: body, url: url,
                    secrets: secrets))
        }
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

    private func deliver(_ message: Claimed) async {
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

    private func attempt(_ message: Claimed, logger: Logger) async -> Result {
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

    private func record(_ result: Result, for message: Claimed, attemptedAt: Date, duration: Duration, logger: Logger) async throws {
        let milliseconds = Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        try await client.withTransaction(logger: logger) { tx in
            let outcome: String
            var status: Int?
            var error: String?
            switch result {
            case .delivered(let code):
                outcome = "delivered"
                status = code
                try await tx.query(
                    """
                    UPDATE webhook_outbox SET status = 'delivered', delivered_at = now(), last_http_status = \(code), last_error = NULL
                    WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                    """, logger: logger)
                logger.debug("Webhook delivered")
            case .gone(let code):
                outcome = "endpoint_disabled"
                status = code
                try await WebhookStore.disable(message.endpointID, reason: "receiver answered 410 Gone", on: tx, logger: logger)
                logger.warning("Webhook endpoint answered 410 Gone and was disabled")
            case .failed(let code, let reason, let retryable):
                status = code
                error = reason
                let elapsed = Duration.milliseconds(Int(max(0, Date().timeIntervalSince(message.firstAttemptAt)) * 1000))
                if retryable, let delay = configuration.retry.delay(afterFailedAttempts: message.attempt, elapsed: elapsed) {
                    outcome = "retrying"
                    let delayMilliseconds = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
                    try await tx.query(
                        """
                        UPDATE webhook_outbox SET next_attempt_at = now() + \(delayMilliseconds) * interval '1 millisecond',
                            last_http_status = \(code), last_error = \(reason)
                        WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                        """, logger: logger)
                    logger.info(
                        "Webhook attempt failed; will retry", metadata: ["http.status": "\(code.map(String.init) ?? "-")", "retry.delay": "\(delay)"])
                } else {
                    outcome = "failed"
                    try await tx.query(
                        """
                        UPDATE webhook_outbox SET status = 'failed', last_http_status = \(code), last_error = \(reason)
                        WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                        """, logger: logger)
                    logger.warning("Webhook given up", metadata: ["http.status": "\(code.map(String.init) ?? "-")"])
                }
            }
            try await tx.query(
                """
                INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, attempt, attempted_at, duration_ms, http_status, error, outcome)
                VALUES (\(message.messageID), \(message.endpointID), \(message.eventType), \(message.attempt), \(attemptedAt), \(milliseconds),
                        \(status), \(error), \(outcome))
                """, logger: logger)
        }
    }
}
