import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TollgateCore
import TollgateGateway
import TollgateRules
import TollgateStore

/// An admin API error: `{"error": {"code", "message"}}`. Codes are stable; messages are for people.
public struct AdminError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONEncoder().encodeResponse(AdminErrorEnvelope(error: ["code": code, "message": message]))
        response.status = status
        return response
    }

    static let unauthorized = AdminError(.unauthorized, "unauthorized", "Send the admin token as `Authorization: Bearer <token>`.")
    static func notFound(_ what: String) -> AdminError { AdminError(.notFound, "not_found", what) }
    static func invalid(_ message: String) -> AdminError { AdminError(.badRequest, "invalid_request", message) }
}

struct AdminErrorEnvelope: Encodable {
    let error: [String: String]
}

/// Checks the admin bearer token (constant time) and turns unexpected errors into a generic 500 after logging them.
struct AdminMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented = request.headers[.authorization].flatMap { header -> String? in
            let parts = header.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : nil
        }
        guard let presented, constantTimeEqual(Array(presented.utf8), token) else { throw AdminError.unauthorized }
        do {
            return try await next(request, context)
        } catch let error as AdminError {
            throw error
        } catch let error as HTTPError {
            throw AdminError(error.status, error.status == .notFound ? "not_found" : "invalid_request", error.body ?? "Invalid request.")
        } catch let error as DecodingError {
            throw AdminError.invalid("The request body is not valid: \(AdminAPI.describe(error))")
        } catch let error as DomainRuleError {
            throw AdminError(.conflict, error.code, error.description)
        } catch {
            context.logger.error("Admin request failed", metadata: ["error": "\(String(reflecting: error))"])
            throw AdminError(.internalServerError, "internal_error", "The request failed; see the server log for request id \(context.id).")
        }
    }
}

/// After an admin call that changed something, this instance reloads its catalog before answering, so the change
/// (a suspension, a revoked key) holds for the very next request here; other instances follow by LISTEN/NOTIFY.
struct RefreshCatalogAfterChange<Context: RequestContext>: RouterMiddleware {
    let refresh: @Sendable () async -> Void

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        if request.method != .get && request.method != .head && (200..<300).contains(response.status.code) { await refresh() }
        return response
    }
}

/// `/admin/v1`: what the platform team scripts against. docs/openapi.yaml describes every route.
///
/// Built on repository protocols only, so its routes are tested on the in-memory repositories as well as end to end.
public struct AdminAPI: Sendable {
    let token: Secret
    let repositories: Repositories
    let policy: PolicyApplier
    /// Reloads this instance's catalog cache after a change (`RefreshCatalogAfterChange`).
    let refreshCatalog: @Sendable () async -> Void
    /// Where suspensions take effect (the same adapter the budget evaluator uses).
    let suspender: any SubscriptionSuspender
    /// This instance's view of its backends' breakers and cool-downs (`GET /admin/v1/backends`).
    let backendHealth: BackendHealth?
    let now: @Sendable () -> Date

    public init(
        token: Secret, repositories: Repositories, suspender: any SubscriptionSuspender, refreshCatalog: @escaping @Sendable () async -> Void,
        backendHealth: BackendHealth? = nil, now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.backendHealth = backendHealth
        self.token = token
        self.repositories = repositories
        self.policy = PolicyApplier(repositories: repositories)
        self.refreshCatalog = refreshCatalog
        self.suspender = suspender
        self.now = now
    }

    public func register(on router: Router<BasicRequestContext>) {
        let admin = router.group("admin/v1")
            .add(middleware: AdminMiddleware(token: Array(token.value.utf8)))
            .add(middleware: RefreshCatalogAfterChange(refresh: refreshCatalog))
        let (catalogStore, keys, policy) = (repositories.catalog, repositories.keys, policy)

        let (health, clock) = (backendHealth, now)
        admin.get("backends") { _, context -> [BackendView] in
            let snapshot = try await catalogStore.snapshot(logger: context.logger)
            let instant = clock()
            let reports = Dictionary(
                uniqueKeysWithValues: (health?.report(backends: Array(snapshot.backends.keys), at: instant) ?? []).map { ($0.backend, $0) })
            return snapshot.backends.values.sorted { $0.name < $1.name }.map { BackendView($0, health: reports[$0.name]) }
        }
        admin.get("subscriptions") { _, context -> [SubscriptionView] in
            let snapshot = try await catalogStore.snapshot(logger: context.logger)
            return snapshot.subscriptions.values.sorted { $0.id < $1.id }.map(SubscriptionView.init)
        }
        admin.get("subscriptions/:id") { _, context -> SubscriptionView in
            let id = SubscriptionID(try context.parameters.require("id"))
            guard let subscription = try await catalogStore.snapshot(logger: context.logger).subscriptions[id] else {
                throw AdminError.notFound("No subscription '\(id)'.")
            }
            return SubscriptionView(subscription)
        }
        admin.post("subscriptions/:id/keys") { request, context -> EditedResponse<CreatedKey> in
            let id = SubscriptionID(try context.parameters.require("id"))
            let body = try? await request.decode(as: KeyRequest.self, context: context)
            let slot = body?.slot ?? .primary
            do {
                let (key, info) = try await keys.create(for: id, slot: slot, logger: context.logger)
                context.logger.info("Subscription key created", metadata: ["subscription.id": "\(id)", "key.id": "\(info.id)"])
                return EditedResponse(status: .created, response: CreatedKey(key: key, info: info))
            } catch let error as KeyStoreError {
                switch error {
                case .unknownSubscription: throw AdminError.notFound(error.description)
                default: throw AdminError(.conflict, "slot_taken", error.description)
                }
            }
        }
        admin.get("keys") { request, context -> [SubscriptionKeyInfo] in
            let subscription = request.uri.queryParameters["subscription"].map { SubscriptionID(String($0)) }
            let includeRevoked = request.uri.queryParameters["include_revoked"] == "true"
            return try await keys.list(subscription: subscription, includeRevoked: includeRevoked, logger: context.logger)
        }
        admin.delete("keys/:key") { _, context -> SubscriptionKeyInfo in
            do {
                let info = try await keys.revoke(try context.parameters.require("key"), logger: context.logger)
                context.logger.info("Subscription key revoked", metadata: ["subscription.id": "\(info.subscription)", "key.id": "\(info.id)"])
                return info
            } catch let error as KeyStoreError {
                throw AdminError.notFound(error.description)
            }
        }
        admin.post("apply") { request, context -> ApplyResult in
            let body = try await request.body.collect(upTo: 4 << 20)
            let text = String(buffer: body)
            let document: PolicyDocument
            do {
                document = try PolicyFile.parse(text, file: "request body")
            } catch let error as PolicyFileError {
                throw AdminError(.unprocessableContent, "invalid_configuration", error.description)
            }
            let dryRun = request.uri.queryParameters["dry_run"] == "true"
            let changes = try await policy.plan(document, logger: context.logger)
            if !dryRun { try await policy.apply(document, logger: context.logger) }
            return ApplyResult(applied: !dryRun, changes: changes)
        }
        registerReports(on: admin)
        // Budgets, subscription suspend/resume (with audit), webhooks: the rules engine's routes.
        RulesAdmin.addRoutes(to: admin, rules: repositories.rules, suspender: suspender) { request, _ in
            // One shared admin token, so the caller names themselves (X-Tollgate-Actor) for the audit trail.
            "admin:\(request.headers[HTTPField.Name("X-Tollgate-Actor")!] ?? "api")"
        }
        let (summaries, now) = (repositories.usageSummaries, now)
        admin.get("usage/summary") { request, context -> [UsageSummary] in
            let from = try Self.instant(request.uri.queryParameters["from"], name: "from") ?? BillingPeriod.containing(now(), kind: .monthly).start
            let to = try Self.instant(request.uri.queryParameters["to"], name: "to") ?? Date.distantFuture
            let subscription = request.uri.queryParameters["subscription"].map { SubscriptionID(String($0)) }
            return try await summaries.summary(from: from, to: to, subscription: subscription, logger: context.logger)
        }
    }

    static func instant(_ text: Substring?, name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Date(iso8601: String(text)) else { throw AdminError.invalid("`\(name)` must be an RFC 3339 timestamp such as 2026-11-01T00:00:00Z.") }
        return date
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): "missing field `\(key.stringValue)`"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            context.codingPath.isEmpty ? "not valid JSON" : "field `\(context.codingPath.map(\.stringValue).joined(separator: "."))` is not valid"
        @unknown default: "not valid"
        }
    }
}

struct SubscriptionView: ResponseEncodable {
    var id: String
    var displayName: String?
    var team: String?
    var costCenter: String?
    var product: String?
    var state: String
    var stateReason: String?
    /// The subscription's own `allowed_models`; nil (omitted) when it sets none.
    var allowedModels: [String]?

    init(_ s: CatalogSnapshot.Subscription) {
        id = s.id.rawValue
        displayName = s.displayName
        team = s.team
        costCenter = s.costCenter
        product = s.product
        state = s.state.rawValue
        stateReason = s.stateReason
        allowedModels = s.allowedModels
    }

    enum CodingKeys: String, CodingKey {
        case id, team, product, state
        case displayName = "display_name"
        case costCenter = "cost_center"
        case stateReason = "state_reason"
        case allowedModels = "allowed_models"
    }
}

struct KeyRequest: Decodable {
    var slot: KeySlot?
}

struct CreatedKey: ResponseEncodable {
    /// Shown once; only its hash is stored.
    var key: String
    var info: SubscriptionKeyInfo
}

extension SubscriptionKeyInfo: ResponseEncodable {}

struct ApplyResult: ResponseEncodable {
    var applied: Bool
    var changes: [String]
}

extension UsageSummary: ResponseEncodable {}

/// A backend with the deployments it serves (its place in each pool) and this instance's view of its health.
struct BackendView: ResponseEncodable {
    struct Deployment: Encodable {
        var name: String
        var model: String
        var priority: Int
        var weight: Int
    }
    struct Breaker: Encodable {
        /// `closed`, `open` or `half_open`.
        var state: String
        var reason: String?
        var since: String?
        var openUntil: String?
        var failures: Int
        var windowSeconds: Int
        var openSeconds: Int

        enum CodingKeys: String, CodingKey {
            case state, reason, since, failures
            case openUntil = "open_until"
            case windowSeconds = "window_seconds"
            case openSeconds = "open_seconds"
        }
    }
    struct Cooling: Encodable {
        var deployment: String
        var until: String
    }
    var name: String
    var kind: String
    var deployments: [Deployment]
    var circuitBreaker: Breaker
    var cooling: [Cooling]

    init(_ backend: BackendSpec, health: BackendHealthReport?) {
        name = backend.name
        kind = backend.kind.rawValue
        deployments = backend.deployments.map { Deployment(name: $0.name, model: $0.model, priority: $0.priority, weight: $0.weight) }
        circuitBreaker = Breaker(
            state: health?.breaker ?? "closed", reason: health?.reason, since: health?.since?.iso8601, openUntil: health?.openUntil?.iso8601,
            failures: backend.circuitBreaker.failures, windowSeconds: backend.circuitBreaker.windowSeconds, openSeconds: backend.circuitBreaker.openSeconds)
        cooling = (health?.cooling ?? []).map { Cooling(deployment: $0.deployment, until: $0.until.iso8601) }
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, deployments, cooling
        case circuitBreaker = "circuit_breaker"
    }
}
