import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// Everything the gateway needs to route and authenticate, read in one go and held in memory by each instance.
public struct CatalogSnapshot: Sendable {
    public struct Backend: Sendable, Hashable {
        public var spec: BackendSpec
    }
    /// One member of the pool serving a deployment name: its backend, the model the upstream serves, and where it
    /// stands in the pool (see `DeploymentSpec`).
    public struct Route: Sendable, Hashable {
        public var backend: String
        public var deployment: String
        public var model: String
        public var priority: Int
        public var weight: Int

        public init(backend: String, deployment: String, model: String, priority: Int = 1, weight: Int = 1) {
            self.backend = backend
            self.deployment = deployment
            self.model = model
            self.priority = priority
            self.weight = weight
        }
    }
    public struct Subscription: Sendable, Hashable {
        public var id: SubscriptionID
        public var displayName: String?
        public var team: String?
        public var costCenter: String?
        public var product: String?
        public var state: SubscriptionState
        public var stateReason: String?
        /// Who set `state`: `config` (the file), `rules-engine`, `admin:<name>`.
        public var stateActor: String
        /// The subscription's own `allowed_models` (within its product's); nil adds no restriction.
        public var allowedModels: [String]?

        public init(
            id: SubscriptionID, displayName: String? = nil, team: String? = nil, costCenter: String? = nil, product: String? = nil,
            state: SubscriptionState, stateReason: String? = nil, stateActor: String, allowedModels: [String]? = nil
        ) {
            self.id = id
            self.displayName = displayName
            self.team = team
            self.costCenter = costCenter
            self.product = product
            self.state = state
            self.stateReason = stateReason
            self.stateActor = stateActor
            self.allowedModels = allowedModels
        }
    }
    public struct Key: Sendable, Hashable {
        public var id: UUID
        public var subscription: SubscriptionID
        public var slot: String
        public var hash: [UInt8]

        public init(id: UUID, subscription: SubscriptionID, slot: String, hash: [UInt8]) {
            self.id = id
            self.subscription = subscription
            self.slot = slot
            self.hash = hash
        }
    }

    public var backends: [String: BackendSpec] = [:]
    /// Routable name → the pool that serves it: one member per backend, by priority, then backend name (a name on
    /// one backend is a pool of one).
    public var routes: [String: [Route]] = [:]
    public var products: [String: ProductSpec] = [:]
    public var subscriptions: [SubscriptionID: Subscription] = [:]
    /// Live (unrevoked) keys by their SHA-256.
    public var keys: [[UInt8]: Key] = [:]
    public var loadedAt: Date = .distantPast

    public init() {}

    /// The deployment names `subscription`'s callers may use: its product's list and its own (see `ModelAccess`).
    public func modelAccess(of subscription: Subscription) -> ModelAccess {
        ModelAccess(product: subscription.product.flatMap { products[$0]?.allowedModels }, subscription: subscription.allowedModels)
    }
}

/// Reads and writes backends, products and subscriptions: what `tollgate apply` manages.
public struct CatalogStore: Sendable {
    public let client: PostgresClient

    public init(client: PostgresClient) { self.client = client }

    /// The whole catalog. Throws `CatalogError.unknownBackendKind` for a backend kind this version does not know.
    public func snapshot(logger: Logger) async throws -> CatalogSnapshot {
        var snapshot = CatalogSnapshot()
        let backendRows = try await client.query("""
            SELECT name, kind, base_url, credential_env, api_version, connect_timeout_seconds, read_timeout_seconds, mock_latency_ms,
                   breaker_failures, breaker_window_seconds, breaker_open_seconds
            FROM backends
            """, logger: logger)
        for try await (name, kind, baseURL, credentialEnv, apiVersion, connect, read, latency, failures, window, open) in backendRows.decode(
            (String, String, String?, String?, String?, Int, Int, Int, Int, Int, Int).self)
        {
            guard let kind = BackendKind(rawValue: kind) else { throw CatalogError.unknownBackendKind(backend: name, kind: kind) }
            snapshot.backends[name] = BackendSpec(
                name: name, kind: kind, baseURL: baseURL, credentialEnv: credentialEnv, apiVersion: apiVersion,
                deployments: [], connectTimeoutSeconds: connect, readTimeoutSeconds: read, mockLatencyMilliseconds: latency,
                circuitBreaker: CircuitBreakerSpec(failures: failures, windowSeconds: window, openSeconds: open))
        }
        for try await (name, backend, model, priority, weight) in try await client.query(
            "SELECT name, backend, model, priority, weight FROM backend_deployments ORDER BY name", logger: logger
        ).decode((String, String, String, Int, Int).self) {
            snapshot.backends[backend]?.deployments.append(DeploymentSpec(name: name, model: model, priority: priority, weight: weight))
        }
        snapshot.routes = CatalogSnapshot.pools(of: Array(snapshot.backends.values))
        for try await (name, displayName, tpm, quota, period, allowedModels, rpm, cap, remainingHeader, consumedHeader, strict, failureMode)
            in try await client.query(
            """
            SELECT name, display_name, tokens_per_minute, token_quota, quota_period, allowed_models,
                   requests_per_minute, default_max_tokens, remaining_tokens_header_name, tokens_consumed_header_name,
                   strict_limits, limits_failure_mode
            FROM products
            """, logger: logger
        ).decode((String, String?, Int?, Int?, String, [String]?, Int?, Int?, String?, String?, Bool, String).self) {
            snapshot.products[name] = ProductSpec(
                name: name, displayName: displayName,
                limits: ProductLimits(
                    tokensPerMinute: tpm, requestsPerMinute: rpm, tokenQuota: quota, quotaPeriod: PeriodKind(rawValue: period) ?? .monthly,
                    defaultMaxTokens: cap, remainingTokensHeaderName: remainingHeader, tokensConsumedHeaderName: consumedHeader, strict: strict,
                    failureMode: ProductLimits.FailureMode(rawValue: failureMode) ?? .open),
                allowedModels: allowedModels)
        }
        for try await (id, displayName, team, costCenter, product, state, reason, actor, allowedModels) in try await client.query(
            "SELECT id, display_name, team, cost_center, product, state, state_reason, state_actor, allowed_models FROM subscriptions", logger: logger
        ).decode((String, String?, String?, String?, String?, String, String?, String, [String]?).self) {
            let subscription = SubscriptionID(id)
            snapshot.subscriptions[subscription] = .init(
                id: subscription, displayName: displayName, team: team, costCenter: costCenter, product: product,
                state: SubscriptionState(rawValue: state) ?? .suspended, stateReason: reason, stateActor: actor, allowedModels: allowedModels)
        }
        for try await (id, subscription, slot, hash) in try await client.query(
            "SELECT id, subscription_id, slot, key_hash FROM subscription_keys WHERE revoked_at IS NULL", logger: logger
        ).decode((UUID, String, String, ByteBuffer).self) {
            let bytes = Array(hash.readableBytesView)
            snapshot.keys[bytes] = .init(id: id, subscription: SubscriptionID(subscription), slot: slot, hash: bytes)
        }
        snapshot.loadedAt = Date()
        return snapshot
    }

    /// What `apply` would change, as readable lines (`+ subscription team-a`, `~ backend openai: base_url`).
    public func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String] {
        CatalogPlan.changes(from: try await snapshot(logger: logger), to: document)
    }

    /// Writes the document in one transaction. Backends not in the document are removed (nothing references them
    /// but routing); products and subscriptions are upserted and never deleted, since usage history names them.
    public func apply(_ document: PolicyDocument, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { tx in
            let names = document.backends.map(\.name)
            try await tx.query("DELETE FROM backends WHERE NOT (name = ANY(\(names)))", logger: logger)
            for backend in document.backends {
                try await tx.query("""
                    INSERT INTO backends (name, kind, base_url, credential_env, api_version, connect_timeout_seconds, read_timeout_seconds, mock_latency_ms,
                                          breaker_failures, breaker_window_seconds, breaker_open_seconds)
                    VALUES (\(backend.name), \(backend.kind.rawValue), \(backend.baseURL), \(backend.credentialEnv), \(backend.apiVersion),
                            \(backend.connectTimeoutSeconds), \(backend.readTimeoutSeconds), \(backend.mockLatencyMilliseconds),
                            \(backend.circuitBreaker.failures), \(backend.circuitBreaker.windowSeconds), \(backend.circuitBreaker.openSeconds))
                    ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, base_url = EXCLUDED.base_url, credential_env = EXCLUDED.credential_env,
                        api_version = EXCLUDED.api_version, connect_timeout_seconds = EXCLUDED.connect_timeout_seconds,
                        read_timeout_seconds = EXCLUDED.read_timeout_seconds, mock_latency_ms = EXCLUDED.mock_latency_ms,
                        breaker_failures = EXCLUDED.breaker_failures, breaker_window_seconds = EXCLUDED.breaker_window_seconds,
                        breaker_open_seconds = EXCLUDED.breaker_open_seconds, updated_at = now()
                    """, logger: logger)
                try await tx.query("DELETE FROM backend_deployments WHERE backend = \(backend.name)", logger: logger)
            }
            for backend in document.backends {
                for deployment in backend.deployments {
                    try await tx.query(
                        """
                        INSERT INTO backend_deployments (name, backend, model, priority, weight)
                        VALUES (\(deployment.name), \(backend.name), \(deployment.model), \(deployment.priority), \(deployment.weight))
                        """,
                        logger: logger)
                }
            }
            for product in document.products {
                try await tx.query("""
                    INSERT INTO products (name, display_name, tokens_per_minute, token_quota, quota_period, allowed_models,
                                          requests_per_minute, default_max_tokens, remaining_tokens_header_name, tokens_consumed_header_name,
                                          strict_limits, limits_failure_mode)
                    VALUES (\(product.name), \(product.displayName), \(product.limits.tokensPerMinute), \(product.limits.tokenQuota), \(product.limits.quotaPeriod.rawValue),
                            \(product.allowedModels), \(product.limits.requestsPerMinute), \(product.limits.defaultMaxTokens),
                            \(product.limits.remainingTokensHeaderName), \(product.limits.tokensConsumedHeaderName),
                            \(product.limits.strict), \(product.limits.failureMode.rawValue))
                    ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, tokens_per_minute = EXCLUDED.tokens_per_minute,
                        token_quota = EXCLUDED.token_quota, quota_period = EXCLUDED.quota_period, allowed_models = EXCLUDED.allowed_models,
                        requests_per_minute = EXCLUDED.requests_per_minute, default_max_tokens = EXCLUDED.default_max_tokens,
                        remaining_tokens_header_name = EXCLUDED.remaining_tokens_header_name,
                        tokens_consumed_header_name = EXCLUDED.tokens_consumed_header_name, strict_limits = EXCLUDED.strict_limits,
                        limits_failure_mode = EXCLUDED.limits_failure_mode, updated_at = now()
                    """, logger: logger)
            }
            for s in document.subscriptions {
                // The file's state applies while the file owns it (state_actor 'config'). A state the rules engine or an
                // admin set is left alone: re-applying an unchanged file must not lift a budget suspension.
                try await tx.query("""
                    INSERT INTO subscriptions AS cur (id, display_name, team, cost_center, product, state, state_actor, allowed_models)
                    VALUES (\(s.id.rawValue), \(s.displayName), \(s.team), \(s.costCenter), \(s.product), \(s.state.rawValue), 'config', \(s.allowedModels))
                    ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name, team = EXCLUDED.team, cost_center = EXCLUDED.cost_center,
                        product = EXCLUDED.product, allowed_models = EXCLUDED.allowed_models,
                        state = CASE WHEN cur.state_actor = 'config' THEN EXCLUDED.state ELSE cur.state END,
                        state_reason = CASE WHEN cur.state_actor = 'config' THEN NULL ELSE cur.state_reason END,
                        updated_at = now()
                    """, logger: logger)
            }
        }
    }

    /// Sets a subscription's state, recording who did it and why.
    /// - Returns: false when no such subscription exists.
    @discardableResult
    public func setState(_ id: SubscriptionID, to state: SubscriptionState, reason: String?, actor: String, logger: Logger) async throws -> Bool {
        let rows = try await client.query("""
            UPDATE subscriptions SET state = \(state.rawValue), state_reason = \(reason), state_actor = \(actor), updated_at = now()
            WHERE id = \(id.rawValue) RETURNING id
            """, logger: logger)
        return try await rows.collect().count == 1
    }
}
