import Foundation
import Logging
import TollgateCore
import TollgateStore

/// `WebhookRepository` over `InMemoryRulesStore`'s tables. Leases and retries run on the store's clock.
public struct InMemoryWebhookRepository: WebhookRepository {
    let store: InMemoryRulesStore

    public func createEndpoint(
        url: String, secret: Secret, eventTypes: [WebhookEventType], description: String?, logger: Logger
    ) async throws -> UUID {
        let id = UUIDv7.make()
        store.read { tables in
            tables.endpoints[id] = .init(
                endpoint: WebhookEndpoint(
                    id: id, url: url, description: description, eventTypes: eventTypes.map(\.rawValue), disabledAt: nil, disabledReason: nil),
                created: tables.next())
            tables.secrets.append(.init(endpoint: id, secret: secret.value, expiresAt: nil, id: tables.next()))
        }
        return id
    }

    public func addSecret(_ secret: Secret, to endpoint: UUID, logger: Logger) async throws {
        store.read { tables in tables.secrets.append(.init(endpoint: endpoint, secret: secret.value, expiresAt: nil, id: tables.next())) }
    }

    public func expireSecret(_ secret: Secret, of endpoint: UUID, at: Date, logger: Logger) async throws {
        store.read { tables in
            for index in tables.secrets.indices where tables.secrets[index].endpoint == endpoint && tables.secrets[index].secret == secret.value {
                tables.secrets[index].expiresAt = at
            }
        }
    }

    public func disable(_ endpoint: UUID, reason: String, logger: Logger) async throws {
        let instant = store.now()
        store.read { InMemoryRulesStore.disable(endpoint, reason: reason, at: instant, tables: &$0) }
    }

    public func endpoints(logger: Logger) async throws -> [WebhookEndpoint] {
        store.read { $0.endpoints.values.sorted { $0.created < $1.created }.map(\.endpoint) }
    }

    public func deliveries(endpoint: UUID?, message: String?, limit: Int, logger: Logger) async throws -> [WebhookDelivery] {
        store.read { tables in
            Array(
                tables.deliveries.reversed().filter { ($0.endpointID == endpoint || endpoint == nil) && ($0.messageID == message || message == nil) }
                    .prefix(limit))
        }
    }

    @discardableResult
    public func enqueue(_ message: WebhookMessage, logger: Logger) async throws -> Int {
        let instant = store.now()
        return store.read { InMemoryRulesStore.enqueue(message, at: instant, tables: &$0) }
    }

    public func claimDue(limit: Int, lease: Duration, logger: Logger) async throws -> [ClaimedWebhook] {
        let instant = store.now()
        let leaseSeconds = Double(lease.components.seconds) + Double(lease.components.attoseconds) / 1e18
        return store.read { tables in
            let due = tables.outbox
                .filter { key, row in
                    row.status == "pending" && row.nextAttemptAt <= instant && tables.endpoints[key.endpoint]?.endpoint.disabledAt == nil
                }
                .sorted { ($0.value.nextAttemptAt, $0.value.enqueued) < ($1.value.nextAttemptAt, $1.value.enqueued) }
                .prefix(limit)
            var claimed: [ClaimedWebhook] = []
            for (key, var row) in due {
                guard let message = tables.messages[key.message], let endpoint = tables.endpoints[key.endpoint]?.endpoint else { continue }
                row.attempts += 1
                row.firstAttemptAt = row.firstAttemptAt ?? instant
                row.nextAttemptAt = instant.addingTimeInterval(leaseSeconds)
                tables.outbox[key] = row
                let secrets = tables.secrets.filter { $0.endpoint == key.endpoint && ($0.expiresAt.map { $0 > instant } ?? true) }
                    .sorted { $0.id < $1.id }.map(\.secret)
                claimed.append(
                    ClaimedWebhook(
                        messageID: key.message, endpointID: key.endpoint, attempt: row.attempts, firstAttemptAt: row.firstAttemptAt ?? instant,
                        eventType: message.type.rawValue, body: message.body, url: endpoint.url, secrets: secrets))
            }
            return claimed
        }
    }

    public func record(_ attempt: WebhookAttempt, logger: Logger) async throws {
        let instant = store.now()
        store.read { tables in
            let key = InMemoryRulesStore.OutboxKey(message: attempt.message.messageID, endpoint: attempt.message.endpointID)
            switch attempt.outcome {
            case .delivered:
                tables.outbox[key]?.status = "delivered"
                tables.outbox[key]?.lastStatus = attempt.httpStatus
                tables.outbox[key]?.lastError = nil
            case .endpointGone(let reason):
                InMemoryRulesStore.disable(attempt.message.endpointID, reason: reason, at: instant, tables: &tables)
            case .retry(let delay):
                let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
                tables.outbox[key]?.nextAttemptAt = instant.addingTimeInterval(seconds)
                tables.outbox[key]?.lastStatus = attempt.httpStatus
                tables.outbox[key]?.lastError = attempt.error
            case .failed:
                tables.outbox[key]?.status = "failed"
                tables.outbox[key]?.lastStatus = attempt.httpStatus
                tables.outbox[key]?.lastError = attempt.error
            }
            tables.deliveries.append(
                WebhookDelivery(
                    id: tables.next(), messageID: attempt.message.messageID, endpointID: attempt.message.endpointID,
                    eventType: attempt.message.eventType, attempt: attempt.message.attempt, attemptedAt: attempt.attemptedAt,
                    durationMilliseconds: attempt.durationMilliseconds, httpStatus: attempt.httpStatus, error: attempt.error,
                    outcome: attempt.outcome.logText))
        }
    }
}
