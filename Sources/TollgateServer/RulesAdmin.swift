import Foundation
import Hummingbird
import Logging
import TollgateCore
import TollgateRules
import TollgateStore

/// The rules engine's administrative operations, shared by the `tollgate subscriptions` / `tollgate webhooks` commands
/// and the admin API, so both do exactly the same thing. They work on the Store's repositories (`RulesRepositories`).
public enum RulesAdmin {
    /// The CLI's logger: warnings and errors only; the command prints its own one-line result.
    public static let quietLogger: Logger = {
        var logger = Logger(label: "tollgate.cli")
        logger.logLevel = .warning  // the command prints its own one-line result
        return logger
    }()

    /// `tollgate subscriptions suspend ID --reason …`.
    /// - Parameters:
    ///   - actor: `admin:<name>`.
    ///   - suspender: the configured management adapter; Tollgate's own catalog when nil.
    public static func suspend(
        rules: RulesRepositories, subscription: String, reason: String, actor: String, suspender: (any SubscriptionSuspender)? = nil,
        logger: Logger = quietLogger
    ) async throws -> SubscriptionChange {
        try await control(rules, suspender).suspend(subscription: SubscriptionID(subscription), reason: reason, actor: actor, logger: logger)
    }

    /// `tollgate subscriptions resume ID --reason … [--increase N]`.
    /// - Parameter increase: decimal text; raises, for the current period only, each budget that holds the subscription.
    public static func resume(
        rules: RulesRepositories, subscription: String, reason: String, actor: String, increase: String?,
        suspender: (any SubscriptionSuspender)? = nil,
        logger: Logger = quietLogger
    ) async throws -> SubscriptionChange {
        var amount: Decimal?
        if let increase {
            guard let value = Decimal(exactly: increase), value > 0 else { throw SubscriptionPatchError.invalidIncrease }
            amount = value
        }
        return try await control(rules, suspender).resume(
            subscription: SubscriptionID(subscription), reason: reason, actor: actor, oneOffIncrease: amount, logger: logger)
    }

    /// `tollgate webhooks create --url …`: registers an endpoint with a new (or given) signing secret.
    /// - Returns: the endpoint id and the secret, which is shown this once.
    public static func createWebhookEndpoint(
        webhooks: any WebhookRepository, url: String, secret: String?, eventTypes: [String], logger: Logger = quietLogger
    ) async throws -> (id: UUID, secret: String) {
        let signing = try secret.map { try WebhookSecret($0) } ?? WebhookSecret.generate()
        var types: [WebhookEventType] = []
        for name in eventTypes {
            guard let type = WebhookEventType(rawValue: name) else { throw RulesAdminError.unknownEventType(name) }
            types.append(type)
        }
        let id = try await webhooks.createEndpoint(url: url, secret: signing, eventTypes: types, logger: logger)
        return (id, signing.text.value)
    }

    /// `tollgate webhooks deliveries [--endpoint ID]`, newest first.
    public static func deliveries(
        webhooks: any WebhookRepository, endpoint: String?, limit: Int, logger: Logger = quietLogger
    ) async throws -> [WebhookDelivery] {
        var endpointID: UUID?
        if let endpoint {
            guard let id = UUID(uuidString: endpoint) else { throw RulesAdminError.invalidEndpointID(endpoint) }
            endpointID = id
        }
        return try await webhooks.deliveries(endpoint: endpointID, limit: limit, logger: logger)
    }

    /// One line per delivery attempt, for the terminal.
    public static func describe(_ delivery: WebhookDelivery) -> String {
        [
            delivery.attemptedAt.iso8601, delivery.endpointID.uuidString.lowercased(), delivery.messageID, delivery.eventType,
            "attempt \(delivery.attempt)", delivery.outcome, delivery.httpStatus.map { "HTTP \($0)" } ?? "-", "\(delivery.durationMilliseconds) ms",
            delivery.error ?? "",
        ].joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }

    public static func describe(_ change: SubscriptionChange) -> String {
        var line = "subscription \(change.subscription): \(change.state) (\(change.outcome.replacingOccurrences(of: "_", with: " ")))"
        if !change.increasedBudgets.isEmpty { line += "; limit raised for this period on \(change.increasedBudgets.joined(separator: ", "))" }
        return line
    }

    private static func control(_ rules: RulesRepositories, _ suspender: (any SubscriptionSuspender)?) -> SubscriptionControl {
        SubscriptionControl(
            budgets: rules.budgets, subscriptions: rules.subscriptions, suspender: suspender ?? TollgateSuspender(subscriptions: rules.subscriptions))
    }

    // MARK: - Admin API

    /// Registers the rules engine's admin routes on `group` (mount it at `/admin/v1`, behind admin authentication):
    ///
    /// - `GET /budgets` → every budget's current status (`[BudgetStatus]`, as `reporting.budget_status`)
    /// - `PUT /budgets/{name}` with a `tollgate.yaml` budget entry as JSON → 204, or 400 naming the problems; such budgets
    ///   survive `tollgate apply`
    /// - `DELETE /budgets/{name}` → 204
    /// - `PATCH /subscriptions/{id}` with `{"state": "suspended" | "active", "reason": "…", "increase": "5000"}` → `SubscriptionChange`
    /// - `GET /subscriptions/{id}/events?limit=` → the subscription's audit trail (`[BudgetAuditEntry]`)
    /// - `POST /webhooks/endpoints` with `{"url", "event_types", "secret"}` → `{"id", "secret"}` (the secret shown once)
    /// - `GET /webhooks/deliveries?endpoint=&limit=` → the delivery log, newest first (`[WebhookDelivery]`)
    ///
    /// - Parameters:
    ///   - suspender: the configured management adapter (the same one the budget evaluator uses).
    ///   - actor: the authenticated administrator as `admin:<name>`, from the request.
    public static func addRoutes<Context: RequestContext>(
        to group: RouterGroup<Context>, rules: RulesRepositories, suspender: any SubscriptionSuspender,
        actor: @escaping @Sendable (Request, Context) -> String
    ) {
        let control = control(rules, suspender)
        let webhooks = rules.webhooks
        group.patch("subscriptions/:id") { request, context -> SubscriptionChange in
            let id = try context.parameters.require("id")
            let patch = try await request.decode(as: SubscriptionStatePatch.self, context: context)
            do {
                return try await control.apply(patch, to: SubscriptionID(id), actor: actor(request, context), logger: context.logger)
            } catch let error as SubscriptionControlError {
                if case .unknownSubscription = error { throw HTTPError(.notFound, message: error.description) }
                throw HTTPError(.badRequest, message: error.description)
            } catch let error as SubscriptionPatchError {
                throw HTTPError(.badRequest, message: error.description)
            }
        }
        group.get("subscriptions/:id/events") { request, context -> [BudgetAuditEntry] in
            let id = try context.parameters.require("id")
            let limit = min(request.uri.queryParameters.get("limit", as: Int.self) ?? 200, 1000)
            return try await control.history(of: SubscriptionID(id), limit: limit, logger: context.logger)
        }
        let budgets = rules.budgets
        group.get("budgets") { _, context -> [BudgetStatus] in
            try await budgets.status(logger: context.logger)
        }
        group.put("budgets/:name") { request, context -> HTTPResponse.Status in
            let name = try context.parameters.require("name")
            let spec = try await request.decode(as: BudgetSpec.self, context: context)
            guard spec.name == name else { throw HTTPError(.badRequest, message: "the body's name must be '\(name)'") }
            do {
                try await budgets.put(spec, actor: actor(request, context), logger: context.logger)
            } catch let rejected as BudgetRejected {
                throw HTTPError(.badRequest, message: rejected.description)
            }
            return .noContent
        }
        group.delete("budgets/:name") { _, context -> HTTPResponse.Status in
            try await budgets.remove(try context.parameters.require("name"), logger: context.logger)
            return .noContent
        }
        group.post("webhooks/endpoints") { request, context -> CreatedWebhookEndpoint in
            let body = try await request.decode(as: WebhookEndpointRequest.self, context: context)
            do {
                let created = try await createWebhookEndpoint(
                    webhooks: webhooks, url: body.url, secret: body.secret, eventTypes: body.eventTypes ?? [], logger: context.logger)
                return CreatedWebhookEndpoint(id: created.id, secret: created.secret)
            } catch let error as RulesAdminError {
                throw HTTPError(.badRequest, message: error.description)
            } catch is WebhookSecretError {
                throw HTTPError(.badRequest, message: WebhookSecretError.malformed.description)
            }
        }
        group.get("webhooks/deliveries") { request, context -> [WebhookDelivery] in
            var endpoint: UUID?
            if let text = request.uri.queryParameters.get("endpoint") {
                guard let id = UUID(uuidString: text) else { throw HTTPError(.badRequest, message: "endpoint must be a UUID") }
                endpoint = id
            }
            let limit = min(request.uri.queryParameters.get("limit", as: Int.self) ?? 100, 1000)
            return try await webhooks.deliveries(endpoint: endpoint, limit: limit, logger: context.logger)
        }
    }
}

/// Body of `POST /admin/v1/webhooks/endpoints`: `{"url": "https://…", "event_types": ["budget.exceeded"], "secret": "whsec_…"}`.
public struct WebhookEndpointRequest: Codable, Sendable {
    public var url: String
    public var eventTypes: [String]?
    public var secret: String?
    enum CodingKeys: String, CodingKey {
        case url, secret
        case eventTypes = "event_types"
    }
}

/// The answer to `POST /admin/v1/webhooks/endpoints`: the secret is shown this once.
public struct CreatedWebhookEndpoint: Codable, Sendable, ResponseEncodable {
    public var id: UUID
    public var secret: String
}

extension SubscriptionChange: ResponseEncodable {}
extension BudgetStatus: ResponseEncodable {}
extension WebhookDelivery: ResponseEncodable {}
extension BudgetAuditEntry: ResponseEncodable {}

public enum RulesAdminError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknownEventType(String)
    case invalidEndpointID(String)

    public var description: String {
        switch self {
        case .unknownEventType(let name):
            "unknown event type '\(name)'; one of: \(WebhookEventType.allCases.map(\.rawValue).joined(separator: ", "))"
        case .invalidEndpointID(let text): "'\(text)' is not an endpoint id (a UUID)"
        }
    }
}
