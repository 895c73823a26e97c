import Foundation

/// The declarative configuration a platform team keeps in `tollgate.yaml` and applies with `tollgate apply`:
/// backends, products and subscriptions. Field names are the YAML's (snake_case); docs/configuration.md
/// describes each one.
public struct PolicyDocument: Hashable, Sendable, Codable {
    public var backends: [BackendSpec]
    public var products: [ProductSpec]
    public var subscriptions: [SubscriptionSpec]
    /// Budgets the rules engine evaluates (docs/budgets.md).
    public var budgets: [BudgetSpec]
    /// Effective-dated price versions (docs/reporting.md).
    public var prices: [PriceSpec] = []
    /// Backends' fixed monthly commitments (PTU), allocated pro rata by tokens.
    public var commitments: [CommitmentSpec] = []
    /// Names of list-price catalogs that ship with Tollgate (`openai`, `azure-openai`), imported on apply.
    public var priceCatalogs: [String] = []

    public init(backends: [BackendSpec] = [], products: [ProductSpec] = [], subscriptions: [SubscriptionSpec] = [], budgets: [BudgetSpec] = []) {
        self.backends = backends
        self.products = products
        self.subscriptions = subscriptions
        self.budgets = budgets
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case backends, products, subscriptions, budgets, prices, commitments
        case priceCatalogs = "price_catalogs"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        backends = try c.decodeIfPresent([BackendSpec].self, forKey: .backends) ?? []
        products = try c.decodeIfPresent([ProductSpec].self, forKey: .products) ?? []
        subscriptions = try c.decodeIfPresent([SubscriptionSpec].self, forKey: .subscriptions) ?? []
        budgets = try c.decodeIfPresent([BudgetSpec].self, forKey: .budgets) ?? []
        prices = try c.decodeIfPresent([PriceSpec].self, forKey: .prices) ?? []
        commitments = try c.decodeIfPresent([CommitmentSpec].self, forKey: .commitments) ?? []
        priceCatalogs = try c.decodeIfPresent([String].self, forKey: .priceCatalogs) ?? []
    }
}

public enum BackendKind: String, Hashable, Sendable, Codable, CaseIterable {
    /// OpenAI's API or anything that speaks it (`{base_url}/chat/completions`, `Authorization: Bearer`).
    case openai
    /// Azure OpenAI (`{base_url}/openai/deployments/{deployment}/…?api-version=`, `api-key`).
    case azure
    /// A built-in fake that answers deterministically with realistic usage. For demos, load tests and benchmarks only.
    case mock
}

/// A routable name clients use (the `model` of an OpenAI-style request, or the `{deployment}` of an Azure-style path)
/// and the model the upstream serves under it.
///
/// The same name on several backends makes a **pool**: requests go to the members of the lowest `priority` number
/// that are available, chosen by `weight` among them, and fail over to the next on 429, 5xx, a connection failure or
/// a timeout (see `docs/configuration.md`).
public struct DeploymentSpec: Hashable, Sendable, Codable {
    public var name: String
    public var model: String
    /// 1 is tried first; a higher number only when no member of a lower one is available.
    public var priority: Int
    /// The share of requests among members of the same priority.
    public var weight: Int

    public init(name: String, model: String, priority: Int = 1, weight: Int = 1) {
        self.name = name
        self.model = model
        self.priority = priority
        self.weight = weight
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case name, model, priority, weight }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        model = try c.decodeIfPresent(String.self, forKey: .model) ?? name
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 1
        weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1
    }
}

/// When a backend that serves a pool is taken out of it: `failures` upstream failures (5xx, connection failures,
/// timeouts) within `windowSeconds` open the breaker for `openSeconds`; then one request probes it (half-open) and
/// its outcome closes the breaker or opens it again.
public struct CircuitBreakerSpec: Hashable, Sendable, Codable {
    public var failures: Int
    public var windowSeconds: Int
    public var openSeconds: Int

    public init(failures: Int = 5, windowSeconds: Int = 30, openSeconds: Int = 30) {
        self.failures = failures
        self.windowSeconds = windowSeconds
        self.openSeconds = openSeconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case failures
        case windowSeconds = "window_seconds"
        case openSeconds = "open_seconds"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        failures = try c.decodeIfPresent(Int.self, forKey: .failures) ?? 5
        windowSeconds = try c.decodeIfPresent(Int.self, forKey: .windowSeconds) ?? 30
        openSeconds = try c.decodeIfPresent(Int.self, forKey: .openSeconds) ?? 30
    }
}

public struct BackendSpec: Hashable, Sendable, Codable {
    public var name: String
    public var kind: BackendKind
    /// `https://api.openai.com/v1` for OpenAI, `https://NAME.openai.azure.com` for Azure. Unused by `mock`.
    public var baseURL: String?
    /// Name of the environment variable that holds the backend's API key. The key itself is never in the file or the database.
    public var credentialEnv: String?
    /// Azure only: the `api-version` sent upstream when the client sent none.
    public var apiVersion: String?
    public var deployments: [DeploymentSpec]
    public var connectTimeoutSeconds: Int
    /// Longest wait for the next byte from the upstream.
    public var readTimeoutSeconds: Int
    /// Mock only: added delay before the first byte, in milliseconds.
    public var mockLatencyMilliseconds: Int
    /// When the backend is taken out of the pools it serves.
    public var circuitBreaker: CircuitBreakerSpec

    public init(
        name: String, kind: BackendKind, baseURL: String? = nil, credentialEnv: String? = nil, apiVersion: String? = nil,
        deployments: [DeploymentSpec] = [], connectTimeoutSeconds: Int = 5, readTimeoutSeconds: Int = 300, mockLatencyMilliseconds: Int = 0,
        circuitBreaker: CircuitBreakerSpec = CircuitBreakerSpec()
    ) {
        self.circuitBreaker = circuitBreaker
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.credentialEnv = credentialEnv
        self.apiVersion = apiVersion
        self.deployments = deployments
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.readTimeoutSeconds = readTimeoutSeconds
        self.mockLatencyMilliseconds = mockLatencyMilliseconds
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, kind, models, deployments
        case baseURL = "base_url"
        case credentialEnv = "credential_env"
        case apiVersion = "api_version"
        case connectTimeoutSeconds = "connect_timeout_seconds"
        case readTimeoutSeconds = "read_timeout_seconds"
        case mockLatencyMilliseconds = "mock_latency_ms"
        case circuitBreaker = "circuit_breaker"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(BackendKind.self, forKey: .kind)
        baseURL = try c.decodeIfPresent(String.self, forKey: .baseURL)
        credentialEnv = try c.decodeIfPresent(String.self, forKey: .credentialEnv)
        apiVersion = try c.decodeIfPresent(String.self, forKey: .apiVersion)
        // `models: [a, b]` is shorthand for deployments whose name is the model.
        let models = try c.decodeIfPresent([String].self, forKey: .models) ?? []
        deployments = models.map { DeploymentSpec(name: $0, model: $0) } + (try c.decodeIfPresent([DeploymentSpec].self, forKey: .deployments) ?? [])
        connectTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .connectTimeoutSeconds) ?? 5
        readTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .readTimeoutSeconds) ?? 300
        mockLatencyMilliseconds = try c.decodeIfPresent(Int.self, forKey: .mockLatencyMilliseconds) ?? 0
        circuitBreaker = try c.decodeIfPresent(CircuitBreakerSpec.self, forKey: .circuitBreaker) ?? CircuitBreakerSpec()
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(kind, forKey: .kind)
        try c.encodeIfPresent(baseURL, forKey: .baseURL)
        try c.encodeIfPresent(credentialEnv, forKey: .credentialEnv)
        try c.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try c.encode(deployments, forKey: .deployments)
        try c.encode(connectTimeoutSeconds, forKey: .connectTimeoutSeconds)
        try c.encode(readTimeoutSeconds, forKey: .readTimeoutSeconds)
        try c.encode(mockLatencyMilliseconds, forKey: .mockLatencyMilliseconds)
        try c.encode(circuitBreaker, forKey: .circuitBreaker)
    }
}

/// Token limits a product puts on each of its subscriptions, like APIM's `llm-token-limit`.
///
/// Admission reserves each request's estimated prompt tokens plus its completion cap (`max_tokens`,
/// `max_completion_tokens` or `max_output_tokens`, else `defaultMaxTokens`) against every limit, and settles to the
/// real usage once the reply is metered: a request whose reservation does not fit is refused before it is forwarded.
public struct ProductLimits: Hashable, Sendable, Codable {
    /// Rolling one-minute token allowance; over it the gateway answers 429 with `Retry-After`.
    public var tokensPerMinute: Int?
    /// Rolling one-minute request allowance; over it the gateway answers 429 with `Retry-After`.
    public var requestsPerMinute: Int?
    /// Tokens allowed per `quotaPeriod`; over it the gateway answers 403 until the period rolls over.
    public var tokenQuota: Int?
    public var quotaPeriod: PeriodKind
    /// The completion tokens reserved for a request that sets no cap of its own; nil reserves its prompt only.
    public var defaultMaxTokens: Int?
    /// Also send the remaining tokens (of the tokens-per-minute limit, else the quota) in a header of this name, as
    /// APIM's `remaining-tokens-header-name` does.
    public var remainingTokensHeaderName: String?
    /// Also send the prompt tokens the gateway counted for the request in a header of this name, as APIM's
    /// `tokens-consumed-header-name` does.
    public var tokensConsumedHeaderName: String?
    /// Lease each request's exact need from the shared minute allowance (one PostgreSQL round trip per request)
    /// instead of slices: for small limits, where a slice held by one instance would refuse callers of another.
    public var strict: Bool
    /// What the minute limits do once an instance has used what it holds and cannot reach PostgreSQL for more.
    public var failureMode: FailureMode

    public enum FailureMode: String, Hashable, Sendable, Codable, CaseIterable {
        /// Admit (counted in `tollgate_admission_unleased_total`): availability first.
        case open
        /// Refuse with 503 `limits_unavailable`: the limit first.
        case closed
    }

    public init(
        tokensPerMinute: Int? = nil, requestsPerMinute: Int? = nil, tokenQuota: Int? = nil, quotaPeriod: PeriodKind = .monthly,
        defaultMaxTokens: Int? = nil, remainingTokensHeaderName: String? = nil, tokensConsumedHeaderName: String? = nil, strict: Bool = false,
        failureMode: FailureMode = .open
    ) {
        self.strict = strict
        self.failureMode = failureMode
        self.tokensPerMinute = tokensPerMinute
        self.requestsPerMinute = requestsPerMinute
        self.tokenQuota = tokenQuota
        self.quotaPeriod = quotaPeriod
        self.defaultMaxTokens = defaultMaxTokens
        self.remainingTokensHeaderName = remainingTokensHeaderName
        self.tokensConsumedHeaderName = tokensConsumedHeaderName
    }

    /// Whether any limit applies (the headers alone do not make a product limited).
    public var limitsAnything: Bool { tokensPerMinute != nil || requestsPerMinute != nil || tokenQuota != nil }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tokensPerMinute = "tokens_per_minute"
        case requestsPerMinute = "requests_per_minute"
        case tokenQuota = "token_quota"
        case quotaPeriod = "quota_period"
        case defaultMaxTokens = "default_max_tokens"
        case remainingTokensHeaderName = "remaining_tokens_header_name"
        case tokensConsumedHeaderName = "tokens_consumed_header_name"
        case strict
        case failureMode = "failure_mode"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tokensPerMinute = try c.decodeIfPresent(Int.self, forKey: .tokensPerMinute)
        requestsPerMinute = try c.decodeIfPresent(Int.self, forKey: .requestsPerMinute)
        tokenQuota = try c.decodeIfPresent(Int.self, forKey: .tokenQuota)
        quotaPeriod = try c.decodeIfPresent(PeriodKind.self, forKey: .quotaPeriod) ?? .monthly
        defaultMaxTokens = try c.decodeIfPresent(Int.self, forKey: .defaultMaxTokens)
        remainingTokensHeaderName = try c.decodeIfPresent(String.self, forKey: .remainingTokensHeaderName)
        tokensConsumedHeaderName = try c.decodeIfPresent(String.self, forKey: .tokensConsumedHeaderName)
        strict = try c.decodeIfPresent(Bool.self, forKey: .strict) ?? false
        failureMode = try c.decodeIfPresent(FailureMode.self, forKey: .failureMode) ?? .open
    }
}

public struct ProductSpec: Hashable, Sendable, Codable {
    public var name: String
    public var displayName: String?
    public var limits: ProductLimits
    /// Deployment names (`*` patterns) every subscription of the product may use; nil allows every one (`ModelAccess`).
    public var allowedModels: [String]?

    public init(name: String, displayName: String? = nil, limits: ProductLimits = .init(), allowedModels: [String]? = nil) {
        self.name = name
        self.displayName = displayName
        self.limits = limits
        self.allowedModels = allowedModels
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, limits
        case displayName = "display_name"
        case allowedModels = "allowed_models"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        displayName = try c.decodeIfPresent(String.self, forKey: .displayName)
        limits = try c.decodeIfPresent(ProductLimits.self, forKey: .limits) ?? .init()
        allowedModels = try c.decodeIfPresent([String].self, forKey: .allowedModels)
    }
}

public enum SubscriptionState: String, Hashable, Sendable, Codable, CaseIterable {
    case active, suspended, cancelled
}

public struct SubscriptionSpec: Hashable, Sendable, Codable {
    public var id: SubscriptionID
    public var displayName: String?
    public var team: String?
    public var costCenter: String?
    public var product: String?
    public var state: SubscriptionState
    /// Deployment names (`*` patterns) this subscription may use, within its product's list; nil adds no restriction.
    public var allowedModels: [String]?

    public init(
        id: SubscriptionID, displayName: String? = nil, team: String? = nil, costCenter: String? = nil, product: String? = nil,
        state: SubscriptionState = .active, allowedModels: [String]? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.team = team
        self.costCenter = costCenter
        self.product = product
        self.state = state
        self.allowedModels = allowedModels
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case id, team, product, state
        case displayName = "display_name"
        case costCenter = "cost_center"
        case allowedModels = "allowed_models"
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(SubscriptionID.self, forKey: .id)
        displayName = try c.decodeIfPresent(String.self, forKey: .displayName)
        team = try c.decodeIfPresent(String.self, forKey: .team)
        costCenter = try c.decodeIfPresent(String.self, forKey: .costCenter)
        product = try c.decodeIfPresent(String.self, forKey: .product)
        state = try c.decodeIfPresent(SubscriptionState.self, forKey: .state) ?? .active
        allowedModels = try c.decodeIfPresent([String].self, forKey: .allowedModels)
    }
}

/// One step of a path into the policy document: a field name or a list index.
public enum PolicyPathComponent: Hashable, Sendable, CustomStringConvertible {
    case key(String)
    case index(Int)
    public var description: String {
        switch self {
        case .key(let key): key
        case .index(let index): "[\(index)]"
        }
    }
}

/// A semantic problem in a policy document, located by its path (`subscriptions[2].product`).
public struct PolicyProblem: Hashable, Sendable, Error {
    public var path: [PolicyPathComponent]
    public var message: String
    public init(path: [PolicyPathComponent], message: String) {
        self.path = path
        self.message = message
    }
    public var pathText: String {
        var text = ""
        for component in path {
            if case .key = component, !text.isEmpty { text += "." }
            text += component.description
        }
        return text
    }
}

extension PolicyDocument {
    /// Checks what the types alone cannot: unique names, known references, sane numbers.
    public func problems() -> [PolicyProblem] {
        var problems: [PolicyProblem] = []
        func add(_ path: [PolicyPathComponent], _ message: String) { problems.append(PolicyProblem(path: path, message: message)) }
        let namePattern = #"^[a-z0-9][a-z0-9._-]{0,63}$"#
        var backendNames: Set<String> = []
        var deploymentNames: Set<String> = []
        for (i, backend) in backends.enumerated() {
            let at: [PolicyPathComponent] = [.key("backends"), .index(i)]
            if backend.name.range(of: namePattern, options: .regularExpression) == nil {
                add(at + [.key("name")], "must be a slug: lower-case letters, digits, '.', '_' or '-'")
            }
            if !backendNames.insert(backend.name).inserted { add(at + [.key("name")], "duplicate backend name '\(backend.name)'") }
            if backend.kind != .mock {
                if let url = backend.baseURL {
                    if let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil {
                    } else {
                        add(at + [.key("base_url")], "must be an http(s) URL such as https://api.openai.com/v1")
                    }
                } else {
                    add(at + [.key("base_url")], "is required for a backend of kind '\(backend.kind.rawValue)'")
                }
            }
            if let env = backend.credentialEnv, env.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) == nil {
                add(at + [.key("credential_env")], "must be the name of an environment variable (the key itself never goes in this file)")
            }
            if backend.deployments.isEmpty { add(at + [.key("deployments")], "a backend needs at least one entry in 'models' or 'deployments'") }
            var namesHere: Set<String> = []
            for (j, deployment) in backend.deployments.enumerated() {
                let entry = at + [.key("deployments"), .index(j)]
                // The same name on another backend makes a pool; twice on one backend is a mistake.
                deploymentNames.insert(deployment.name)
                if !namesHere.insert(deployment.name).inserted {
                    add(entry + [.key("name")], "'\(deployment.name)' is listed twice on backend '\(backend.name)'")
                }
                if deployment.name.isEmpty || deployment.name.contains("/") {
                    add(entry + [.key("name")], "must be non-empty and contain no '/'")
                }
                if !(1...100).contains(deployment.priority) { add(entry + [.key("priority")], "must be between 1 and 100 (1 is tried first)") }
                if !(1...1000).contains(deployment.weight) { add(entry + [.key("weight")], "must be between 1 and 1000") }
            }
            let breaker = at + [.key("circuit_breaker")]
            if !(1...1000).contains(backend.circuitBreaker.failures) { add(breaker + [.key("failures")], "must be between 1 and 1000") }
            if !(1...3600).contains(backend.circuitBreaker.windowSeconds) { add(breaker + [.key("window_seconds")], "must be between 1 and 3600") }
            if !(1...3600).contains(backend.circuitBreaker.openSeconds) { add(breaker + [.key("open_seconds")], "must be between 1 and 3600") }
            if !(1...600).contains(backend.connectTimeoutSeconds) { add(at + [.key("connect_timeout_seconds")], "must be between 1 and 600") }
            if !(1...3600).contains(backend.readTimeoutSeconds) { add(at + [.key("read_timeout_seconds")], "must be between 1 and 3600") }
            if !(0...60_000).contains(backend.mockLatencyMilliseconds) { add(at + [.key("mock_latency_ms")], "must be between 0 and 60000") }
        }
        var productNames: Set<String> = []
        for (i, product) in products.enumerated() {
            let at: [PolicyPathComponent] = [.key("products"), .index(i)]
            if product.name.range(of: namePattern, options: .regularExpression) == nil {
                add(at + [.key("name")], "must be a slug: lower-case letters, digits, '.', '_' or '-'")
            }
            if !productNames.insert(product.name).inserted { add(at + [.key("name")], "duplicate product name '\(product.name)'") }
            if let tpm = product.limits.tokensPerMinute, tpm <= 0 { add(at + [.key("limits"), .key("tokens_per_minute")], "must be positive") }
            if let quota = product.limits.tokenQuota, quota <= 0 { add(at + [.key("limits"), .key("token_quota")], "must be positive") }
            if let rpm = product.limits.requestsPerMinute, rpm <= 0 { add(at + [.key("limits"), .key("requests_per_minute")], "must be positive") }
            if let cap = product.limits.defaultMaxTokens, cap <= 0 { add(at + [.key("limits"), .key("default_max_tokens")], "must be positive") }
            for (key, name) in [("remaining_tokens_header_name", product.limits.remainingTokensHeaderName), ("tokens_consumed_header_name", product.limits.tokensConsumedHeaderName)] {
                if let name, name.range(of: "^[A-Za-z0-9-]{1,64}$", options: .regularExpression) == nil {
                    add(at + [.key("limits"), .key(key)], "must be an HTTP header name: letters, digits and '-', at most 64 characters")
                }
            }
            problems += allowedModelsProblems(product.allowedModels, at: at, deployments: deploymentNames)
        }
        var subscriptionIDs: Set<SubscriptionID> = []
        for (i, subscription) in subscriptions.enumerated() {
            let at: [PolicyPathComponent] = [.key("subscriptions"), .index(i)]
            if !SubscriptionID.isValid(subscription.id.rawValue) {
                add(at + [.key("id")], "must be a slug: lower-case letters, digits, '.', '_' or '-', at most 64 characters")
            }
            if !subscriptionIDs.insert(subscription.id).inserted { add(at + [.key("id")], "duplicate subscription id '\(subscription.id)'") }
            if let product = subscription.product, !productNames.contains(product) {
                add(at + [.key("product")], "unknown product '\(product)'; products in this file: \(productNames.sorted().joined(separator: ", "))")
            }
            problems += allowedModelsProblems(subscription.allowedModels, at: at, deployments: deploymentNames)
        }
        problems += validate(budgets: budgets, knownSubscriptions: subscriptionIDs, knownProducts: productNames)
        problems += pricingProblems(backendNames: backendNames)
        return problems
    }
}

extension PolicyDocument {
    /// An `allowed_models` list's problems: an empty list or pattern, and a pattern that matches no deployment of this
    /// file (an error, not a warning: it is a typo or a stale name, and it would silently allow nothing).
    func allowedModelsProblems(_ patterns: [String]?, at: [PolicyPathComponent], deployments: Set<String>) -> [PolicyProblem] {
        guard let patterns else { return [] }
        let field = at + [.key("allowed_models")]
        if patterns.isEmpty {
            return [PolicyProblem(path: field, message: "must name at least one deployment (omit the field to allow every one)")]
        }
        var problems: [PolicyProblem] = []
        for (k, pattern) in patterns.enumerated() {
            if pattern.isEmpty {
                problems.append(PolicyProblem(path: field + [.index(k)], message: "must be non-empty: a deployment name, or a pattern with '*'"))
            } else if !deployments.contains(where: { ModelAccess.matches(pattern: pattern, $0) }) {
                problems.append(PolicyProblem(
                    path: field + [.index(k)], message: "'\(pattern)' matches no deployment in this file; deployments: \(deployments.sorted().joined(separator: ", "))"))
            }
        }
        return problems
    }
}

/// A key that names one field of a keyed container, for reporting fields nobody asked for.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws when the mapping has a field that `Keys` does not name, so a typo (`cost_centre`) is an error, not a silent default.
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try self.container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key],
                debugDescription: "unknown field '\(key.stringValue)'; expected one of: \(known.sorted().joined(separator: ", "))"))
        }
    }
}
