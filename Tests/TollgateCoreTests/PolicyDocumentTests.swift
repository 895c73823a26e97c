import Foundation
import Testing
import TollgateCore

/// A document with no problems; each test breaks one thing in a copy.
private let valid = PolicyDocument(
    backends: [
        BackendSpec(
            name: "openai", kind: .openai, baseURL: "https://api.openai.com/v1", credentialEnv: "OPENAI_API_KEY",
            deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini")]),
        BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "mock-small", model: "mock-small")]),
    ],
    products: [ProductSpec(name: "standard", limits: ProductLimits(tokensPerMinute: 10_000))],
    subscriptions: [SubscriptionSpec(id: "team-search-prod", team: "search", costCenter: "cc-100", product: "standard")]
)

private func paths(_ document: PolicyDocument) -> [String] { document.problems().map(\.pathText) }

struct PolicyProblemsTests {
    @Test func aValidDocumentHasNoProblems() {
        #expect(valid.problems() == [])
    }

    @Test func duplicateBackendNamesAreReportedAtTheSecond() {
        var document = valid
        document.backends[1].name = "openai"
        let problems = document.problems()
        #expect(problems.map(\.pathText) == ["backends[1].name"])
        #expect(problems.first?.message == "duplicate backend name 'openai'")
    }

    @Test func duplicateProductsAndSubscriptions() {
        var document = valid
        document.products.append(ProductSpec(name: "standard"))
        document.subscriptions.append(SubscriptionSpec(id: "team-search-prod"))
        #expect(paths(document) == ["products[1].name", "subscriptions[1].id"])
    }

    /// The same name on two backends is a pool; twice on one backend is a mistake, and so are priorities, weights and
    /// breaker settings out of range.
    @Test func aDeploymentNameOnSeveralBackendsIsAPoolButNotTwiceOnOne() {
        var document = valid
        document.backends[1].deployments = [DeploymentSpec(name: "gpt-4o-mini", model: "fake", priority: 2)]
        #expect(document.problems().isEmpty)
        document.backends[1].deployments.append(DeploymentSpec(name: "gpt-4o-mini", model: "other"))
        let problems = document.problems()
        #expect(problems.map(\.pathText) == ["backends[1].deployments[1].name"])
        #expect(problems.first?.message == "'gpt-4o-mini' is listed twice on backend '\(document.backends[1].name)'")
        document.backends[1].deployments = [DeploymentSpec(name: "gpt-4o-mini", model: "fake", priority: 0, weight: 1001)]
        document.backends[1].circuitBreaker = CircuitBreakerSpec(failures: 0, windowSeconds: 3601, openSeconds: 0)
        #expect(
            document.problems().map(\.pathText) == [
                "backends[1].deployments[0].priority", "backends[1].deployments[0].weight", "backends[1].circuit_breaker.failures",
                "backends[1].circuit_breaker.window_seconds", "backends[1].circuit_breaker.open_seconds",
            ])
    }

    @Test func unknownProductNamesTheKnownOnes() {
        var document = valid
        document.subscriptions[0].product = "premium"
        let problems = document.problems()
        #expect(problems.map(\.pathText) == ["subscriptions[0].product"])
        #expect(problems.first?.message == "unknown product 'premium'; products in this file: standard")
    }

    @Test(arguments: ["Team-A", "team a", "-team", "", "tëam", String(repeating: "x", count: 65)])
    func badSubscriptionSlug(id: String) {
        var document = valid
        document.subscriptions[0].id = SubscriptionID(id)
        #expect(paths(document) == ["subscriptions[0].id"])
    }

    @Test(arguments: ["OpenAI", "open ai", "_x"])
    func badBackendAndProductSlugs(name: String) {
        var document = valid
        document.backends[1].name = name
        document.products[0].name = name
        document.subscriptions[0].product = name  // keep the reference valid: only the slug is wrong
        #expect(paths(document) == ["backends[1].name", "products[0].name"])
    }

    @Test(arguments: [BackendKind.openai, .azure])
    func baseURLIsRequiredExceptForMock(kind: BackendKind) {
        var document = valid
        document.backends[0].kind = kind
        document.backends[0].baseURL = nil
        let problems = document.problems()
        #expect(problems.map(\.pathText) == ["backends[0].base_url"])
        #expect(problems.first?.message == "is required for a backend of kind '\(kind.rawValue)'")
    }

    @Test(arguments: ["ftp://example.com", "api.openai.com/v1", "http://", "not a url"])
    func baseURLMustBeHTTP(url: String) {
        var document = valid
        document.backends[0].baseURL = url
        #expect(paths(document) == ["backends[0].base_url"])
    }

    @Test(arguments: ["sk-abc123", "1KEY", "MY KEY"])
    func credentialEnvMustNameAVariable(name: String) {
        var document = valid
        document.backends[0].credentialEnv = name
        #expect(paths(document) == ["backends[0].credential_env"])
    }

    @Test func numbersOutOfRange() {
        var document = valid
        document.backends[0].connectTimeoutSeconds = 0
        document.backends[0].readTimeoutSeconds = 3601
        document.backends[1].mockLatencyMilliseconds = -1
        document.backends[1].deployments = []
        document.products[0].limits = ProductLimits(
            tokensPerMinute: 0, requestsPerMinute: 0, tokenQuota: -5, defaultMaxTokens: 0, remainingTokensHeaderName: "remaining tokens",
            tokensConsumedHeaderName: "")
        #expect(
            paths(document) == [
                "backends[0].connect_timeout_seconds", "backends[0].read_timeout_seconds",
                "backends[1].deployments", "backends[1].mock_latency_ms",
                "products[0].limits.tokens_per_minute", "products[0].limits.token_quota", "products[0].limits.requests_per_minute",
                "products[0].limits.default_max_tokens", "products[0].limits.remaining_tokens_header_name",
                "products[0].limits.tokens_consumed_header_name",
            ])
    }
}

struct PolicyDecodingTests {
    private func decode(_ json: String) throws -> PolicyDocument {
        try JSONDecoder().decode(PolicyDocument.self, from: Data(json.utf8))
    }

    @Test func decodesTheAdmissionSettings() throws {
        let document = try decode(
            """
            {"products": [{"name": "p", "limits": {"requests_per_minute": 60, "default_max_tokens": 256,
              "remaining_tokens_header_name": "remaining-tokens", "tokens_consumed_header_name": "tokens-consumed"}}]}
            """)
        #expect(document.products[0].limits == ProductLimits(
            requestsPerMinute: 60, defaultMaxTokens: 256, remainingTokensHeaderName: "remaining-tokens", tokensConsumedHeaderName: "tokens-consumed"))
        #expect(throws: (any Error).self) { try decode(#"{"products": [{"name": "p", "limits": {"max_tokens_default": 1}}]}"#) }
    }

    @Test func decodesSnakeCaseWithDefaults() throws {
        let document = try decode(
            """
            {"backends": [{"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:8081/v1", "credential_env": "OPENAI_KEY",
                           "models": ["gpt-4o-mini"], "deployments": [{"name": "prod-4o", "model": "gpt-4o"}, {"name": "gpt-4.1"}]}],
             "products": [{"name": "standard", "display_name": "Standard", "limits": {"tokens_per_minute": 5000, "quota_period": "weekly"}}],
             "subscriptions": [{"id": "team-a", "display_name": "Team A", "cost_center": "cc-1", "product": "standard"}]}
            """)
        let expected = PolicyDocument(
            backends: [
                BackendSpec(
                    name: "openai", kind: .openai, baseURL: "http://127.0.0.1:8081/v1", credentialEnv: "OPENAI_KEY",
                    deployments: [
                        DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini"), DeploymentSpec(name: "prod-4o", model: "gpt-4o"),
                        DeploymentSpec(name: "gpt-4.1", model: "gpt-4.1"),
                    ],
                    connectTimeoutSeconds: 5, readTimeoutSeconds: 300, mockLatencyMilliseconds: 0)
            ],
            products: [ProductSpec(name: "standard", displayName: "Standard", limits: ProductLimits(tokensPerMinute: 5000, quotaPeriod: .weekly))],
            subscriptions: [SubscriptionSpec(id: "team-a", displayName: "Team A", costCenter: "cc-1", product: "standard", state: .active)])
        #expect(document == expected)
    }

    @Test func anEmptyDocumentIsEmpty() throws {
        #expect(try decode("{}") == PolicyDocument())
    }

    @Test(
        arguments: [
            (#"{"subscriptions": [{"id": "team-a", "cost_centre": "cc-1"}]}"#, "cost_centre", "subscriptions"),
            (#"{"backend": []}"#, "backend", nil),
            (#"{"backends": [{"name": "m", "kind": "mock", "models": ["x"], "baseURL": "http://x"}]}"#, "baseURL", "backends"),
            (#"{"products": [{"name": "p", "limits": {"tokensPerMinute": 5}}]}"#, "tokensPerMinute", "products"),
            (#"{"backends": [{"name": "m", "kind": "mock", "deployments": [{"name": "x", "modle": "y"}]}]}"#, "modle", "backends"),
        ] as [(String, String, String?)])
    func unknownKeysAreErrorsNamingTheField(json: String, field: String, firstPathKey: String?) throws {
        do {
            _ = try decode(json)
            Issue.record("decoded a document with the unknown field '\(field)'")
        } catch let DecodingError.dataCorrupted(context) {
            #expect(context.codingPath.last?.stringValue == field)
            #expect(context.codingPath.first?.stringValue == (firstPathKey ?? field))
            #expect(context.debugDescription.hasPrefix("unknown field '\(field)'; expected one of: "))
        }
    }

    @Test func unknownBackendKindIsAnError() {
        #expect(throws: DecodingError.self) { try decode(#"{"backends": [{"name": "x", "kind": "anthropic", "models": ["m"]}]}"#) }
    }
}

/// `allowed_models` on products and subscriptions.
struct AllowedModelsProblemsTests {
    @Test func patternsThatMatchAConfiguredDeploymentAreValid() {
        var document = valid
        document.products[0].allowedModels = ["gpt-4o*", "mock-small"]
        document.subscriptions[0].allowedModels = ["*"]
        #expect(document.problems().isEmpty)
    }

    @Test func anEmptyListAnEmptyPatternAndAPatternMatchingNothingAreProblems() {
        var document = valid
        document.products[0].allowedModels = []
        document.subscriptions[0].allowedModels = ["gpt-4o-mini", "", "gpt-5*"]
        let problems = document.problems()
        #expect(problems.map(\.pathText) == [
            "products[0].allowed_models", "subscriptions[0].allowed_models[1]", "subscriptions[0].allowed_models[2]",
        ])
        #expect(problems.last?.message == "'gpt-5*' matches no deployment in this file; deployments: gpt-4o-mini, mock-small")
    }
}
